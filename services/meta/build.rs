//! Compiles the metadata gRPC contract. protoc comes from `protoc-bin-vendored`, so building needs
//! no system-wide protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let proto_file = proto_root.join("yubin/meta/v1/meta.proto");

    // Edition 2024 makes `std::env::set_var` unsafe and the workspace forbids unsafe code, so the
    // vendored protoc is handed to prost-build directly instead of through the PROTOC variable.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    println!("cargo:rerun-if-changed={}", proto_file.display());
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Summaries travel as `bytes::Bytes` so they reach the domain type without a copy.
        .bytes(".yubin.meta.v1")
        .compile_with_config(config, &[proto_file], &[proto_root])?;
    Ok(())
}
