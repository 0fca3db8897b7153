//! The `certmint` binary: install the crypto provider, parse arguments, run.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = certmint::cli::Cli::parse();
    match certmint::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certmint: {e:#}");
            ExitCode::from(2)
        }
    }
}
