//! The `certmint` command line: argument definitions and dispatch.

mod audit;
mod ca;
pub mod certify;
pub mod check;
mod describe;
pub mod dev;
mod hsm;
mod inspect;
mod rotation;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// The version line: crate version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CERTMINT_GIT_COMMIT"),
    ")"
);

/// certmint: a certificate authority for Kubernetes workloads (Linkerd identity API).
#[derive(Debug, Parser)]
#[command(name = "certmint", version = VERSION, about)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, env = "CERTMINT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CA (config file, then CERTMINT_* environment, then flags).
    Serve(serve::ServeArgs),
    /// Run a complete local CA with throwaway credentials (no Kubernetes needed).
    Dev(dev::DevArgs),
    /// Act as a workload: make a key and CSR, call Certify, verify and write the result.
    Certify(certify::CertifyArgs),
    /// Create CA material: a trust anchor, an issuer, an anchor bundle.
    Ca(ca::CaArgs),
    /// Validate trust anchors and issuer (files or live objects). Exit 0 healthy,
    /// 1 expiring within --warn-within, 2 invalid or expired.
    Check(check::CheckArgs),
    /// Show a certificate chain (file or TLS server) and whether it verifies.
    Inspect(inspect::InspectArgs),
    /// Check (`verify`) or search (`find`) issuance audit files.
    Audit(audit::AuditArgs),
    /// Trust-anchor rotation: what blocks the next step (`status`), the steps (`plan`).
    Rotation(rotation::RotationArgs),
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let log_format = cli.log_format.unwrap_or_default();
    match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format).await,
        Command::Dev(args) => dev::run(args, log_format).await,
        Command::Certify(args) => {
            crate::telemetry::init(log_format);
            certify::run(args).await
        }
        Command::Ca(args) => ca::run(args),
        Command::Check(args) => check::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Audit(args) => audit::run(args),
        Command::Rotation(args) => rotation::run(args).await,
    }
}
