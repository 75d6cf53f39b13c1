/// Generated protobuf and gRPC code for `proto/yubin/meta/v1/meta.proto`.
pub mod pb {
    tonic::include_proto!("yubin.meta.v1");
}
