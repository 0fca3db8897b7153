//! The `certmint` binary: install the crypto provider, parse arguments, run.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc malloc: a Certify allocates and frees many small buffers on
/// two threads, and glibc's arenas cost about 7 % of the server's CPU (issue 6 profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
