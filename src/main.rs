//! The `certmint` binary: install the crypto provider, parse arguments, run.

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = certmint::cli::Cli::parse();
    let runtime = match certmint::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "certmint: cannot start the async runtime: {e}; check the process limits on threads"
            );
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(certmint::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certmint: {e:#}");
            ExitCode::from(2)
        }
    }
}
