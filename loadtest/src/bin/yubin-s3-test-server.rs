//! The repository's test S3 server (s3s-fs over a directory, the fixed test credentials of
//! `yubin_blob::test_server`) as a process of its own, so a script can run Yubin's distributed
//! stack outside the test harness (loadtest/scripts/bench-vs-dovecot.sh). It creates the
//! bucket, prints `s3 listening on <endpoint>`, writes the AWS variables a Yubin role needs to
//! `--env-file` (shell syntax), and serves until it is killed.

use clap::Parser;
use std::path::PathBuf;
use yubin_blob::test_server::{TEST_REGION, spawn_s3s_fs};

#[derive(Parser)]
#[command(about = "s3s-fs test S3 server for benchmarks")]
struct Args {
    /// Directory holding the buckets (one subdirectory each).
    #[arg(long)]
    root: PathBuf,
    #[arg(long, default_value = "yubin-bench")]
    bucket: String,
    /// Where to write AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
    #[arg(long)]
    env_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(args.root.join(&args.bucket))?;
    let server = spawn_s3s_fs(&args.root).await?;
    let env = format!(
        "AWS_ENDPOINT_URL_S3={}\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_REGION={}\n",
        server.endpoint, server.access_key, server.secret_key, TEST_REGION
    );
    // Written under another name and renamed, so a reader never sees half of it.
    let partial = args.env_file.with_extension("partial");
    std::fs::write(&partial, env)?;
    std::fs::rename(&partial, &args.env_file)?;
    println!("s3 listening on {}", server.endpoint);
    std::future::pending::<()>().await;
    drop(server);
    Ok(())
}
