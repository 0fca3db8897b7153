//! Generates the gRPC code from `proto/` with a pure-Rust protobuf parser (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["identity.proto", "istio_ca.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("identity_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Certificates and tokens as `Bytes`: the issuer chain is encoded once and shared.
        .bytes(".io.linkerd.proxy.identity")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
