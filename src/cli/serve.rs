//! `certmint serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::app::Server;
use crate::config::{Config, LogFormat};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML configuration file (see config/certmint.yaml); defaults apply without one.
    #[arg(long, env = "CERTMINT_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address (overrides `listen`).
    #[arg(long, env = "CERTMINT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (overrides `admin_listen`).
    #[arg(long, env = "CERTMINT_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Issuer directory for the files source (overrides `issuer.dir`).
    #[arg(long, env = "CERTMINT_ISSUER_DIR")]
    issuer_dir: Option<PathBuf>,
    /// Trust-anchor bundle for the files source (overrides `trust_anchors.file`).
    #[arg(long, env = "CERTMINT_TRUST_ANCHORS")]
    trust_anchors: Option<PathBuf>,
    /// Trust domain (overrides `trust_domain`).
    #[arg(long, env = "CERTMINT_TRUST_DOMAIN")]
    trust_domain: Option<String>,
    /// Control-plane namespace (overrides `control_namespace`).
    #[arg(long, env = "CERTMINT_CONTROL_NAMESPACE")]
    control_namespace: Option<String>,
    /// Serve plaintext gRPC (overrides `tls.enabled`).
    #[arg(long, env = "CERTMINT_PLAINTEXT")]
    plaintext: bool,
    /// kubeconfig file (overrides `kubeconfig`; in-cluster or KUBECONFIG otherwise).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

impl ServeArgs {
    /// The file's settings with environment and flags applied on top; `Server::start`
    /// checks them (once).
    pub fn into_config(self, log_format: Option<LogFormat>) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.admin_listen {
            c.admin_listen = v;
        }
        if let Some(v) = self.issuer_dir {
            c.issuer.dir = v;
        }
        if let Some(v) = self.trust_anchors {
            c.trust_anchors.file = v;
        }
        if let Some(v) = self.trust_domain {
            c.trust_domain = v;
        }
        if let Some(v) = self.control_namespace {
            c.control_namespace = v;
        }
        if let Some(v) = self.kubeconfig {
            c.kubeconfig = Some(v);
        }
        if let Some(v) = log_format {
            c.log_format = v;
        }
        if self.plaintext {
            c.tls.enabled = false;
        }
        Ok(c)
    }
}

pub async fn run(args: ServeArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = args.into_config(log_format)?;
    crate::telemetry::init(config.log_format);
    let server = Server::start(config).await?;
    server.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}
