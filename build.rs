//! Generates the gRPC server and client code of `proto/*.proto` (tonic + prost), and the file
//! descriptor set server reflection serves. Needs `protoc` on the PATH (or `PROTOC`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        // prost's codec, with a message that does not parse answered INVALID_ARGUMENT.
        .codec_path("crate::grpc::codec::StrictCodec")
        .file_descriptor_set_path(out.join("inferd_descriptor.bin"))
        .compile_protos(
            &["proto/tei.proto", "proto/grpc_predict_v2.proto"],
            &["proto"],
        )?;
    Ok(())
}
