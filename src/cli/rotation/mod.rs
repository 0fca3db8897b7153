//! `certmint rotation status | plan`: where a trust-anchor rotation stands and what blocks
//! its next step (from certmint's admin endpoint `/trust`), and the steps of one for this
//! cluster (offline).

mod judge;
mod plan;
mod reach;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::cli::describe::OutputFormat;
pub use reach::{ADMIN_PORT, CERTMINT_PODS, ReplicaArgs};
pub(crate) use reach::{fetch, through_api_server};

#[derive(Debug, Args)]
pub struct RotationArgs {
    #[command(subcommand)]
    command: RotationCommand,
}

#[derive(Debug, Subcommand)]
enum RotationCommand {
    /// What blocks the next step. Exit 0 nothing blocks, 1 waiting (with what on),
    /// 2 unsafe (a running pod does not trust the active issuer's anchor, or an anchor was
    /// removed while leaves under it live).
    Status(StatusArgs),
    /// The steps of a trust-anchor rotation for this cluster, with the commands.
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// certmint's admin address (e.g. after `kubectl -n certmint port-forward deploy/certmint 9990`).
    #[arg(long, default_value = "http://127.0.0.1:9990")]
    admin: String,
    /// Ask every running certmint replica through the API server (the pods' `proxy`
    /// subresource) instead of `--admin`.
    #[arg(long)]
    kubernetes: bool,
    #[command(flatten)]
    replicas: ReplicaArgs,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// The new trust anchor (PEM), made offline with `certmint ca root`.
    #[arg(long)]
    new_anchor: PathBuf,
    /// The bundle in use now (default: read it from the cluster in the first step).
    #[arg(long)]
    trust_anchors: Option<PathBuf>,
    #[arg(long, default_value = "certmint")]
    namespace: String,
    #[arg(long, default_value = "certmint-issuer")]
    secret: String,
    #[arg(long, default_value = "certmint-trust-anchors")]
    configmap: String,
    /// Linkerd's namespace (its trust-roots ConfigMap and `linkerd upgrade`).
    #[arg(long, default_value = "linkerd")]
    linkerd_namespace: String,
}

pub async fn run(args: RotationArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RotationCommand::Status(a) => status(a).await,
        RotationCommand::Plan(a) => plan::plan(a),
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let reports = match args.kubernetes {
        true => through_api_server(&args.replicas).await?,
        false => vec![(args.admin.clone(), fetch(&args.admin).await)],
    };
    if reports.is_empty() {
        bail!(
            "no running certmint pod in namespace {} with labels {}; pass --certmint-namespace / --selector",
            args.replicas.namespace,
            args.replicas.selector
        );
    }
    let several = reports.len() > 1;
    let mut worst = 0;
    let mut json = serde_json::Map::new();
    for (replica, report) in reports {
        let (code, text) = match &report {
            Ok(r) => judge::judge(r),
            Err(e) => (2, format!("cannot read its trust report: {e:#}\n")),
        };
        worst = worst.max(code);
        match args.output {
            OutputFormat::Table if several => print!("== {replica} (exit {code})\n{text}"),
            OutputFormat::Table => print!("{text}"),
            OutputFormat::Json => {
                let value = match report {
                    Ok(r) => serde_json::to_value(r)?,
                    Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
                };
                json.insert(replica, value);
            }
        }
    }
    if matches!(args.output, OutputFormat::Json) {
        let out = match (args.kubernetes, json.len()) {
            (false, 1) => json.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
            _ => serde_json::Value::Object(json),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::from(worst))
}
