//! Generates the gRPC code from `proto/` with a pure-Rust protobuf parser (no system
//! protoc), and records the git commit for `certmint --version`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=CERTMINT_GIT_COMMIT");
    for git_file in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(git_file).exists() {
            println!("cargo:rerun-if-changed={git_file}");
        }
    }
    let fds = protox::compile(["identity.proto"], ["proto"])?;
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
    println!("cargo:rustc-env=CERTMINT_GIT_COMMIT={}", git_commit());
    Ok(())
}

fn git_commit() -> String {
    if let Ok(c) = std::env::var("CERTMINT_GIT_COMMIT") {
        return c;
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
