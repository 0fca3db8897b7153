//! `certmint check`: validate the trust anchors and the issuer, from files or from the live
//! Secret and ConfigMap. Exit 0 healthy, 1 something expires within the warning window,
//! 2 invalid or expired.

mod evaluate;
mod kube;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use clap::Args;

use crate::cli::describe::OutputFormat;
use crate::config::parse_duration;
use certmint_core::fsutil::read_bounded;
use certmint_core::identity::Naming;
use certmint_k8s::sources::files::{MAX_PEM_BYTES, read_issuer_dir};

pub use evaluate::{Finding, Inputs, Report, Severity, evaluate};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Trust-anchor bundle (PEM).
    #[arg(
        long,
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    trust_anchors: Option<PathBuf>,
    /// Issuer directory: tls.crt and tls.key, or crt.pem and key.pem.
    #[arg(
        long,
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    issuer_dir: Option<PathBuf>,
    /// Check the live issuer Secret and anchors ConfigMap (kubeconfig credentials).
    #[arg(long)]
    kubernetes: bool,
    #[command(flatten)]
    kube: kube::KubeArgs,
    #[command(flatten)]
    hsm: crate::cli::hsm::HsmArgs,
    /// certmint's admin address (e.g. http://127.0.0.1:9990 through a port-forward): adds
    /// the trust interlock's findings (running pods that do not trust the active issuer's
    /// anchor: error; an issuer held for them: warning). With --kubernetes and without
    /// this, certmint's pods in --namespace are asked through the API server.
    #[arg(long)]
    admin: Option<String>,
    /// With --kubernetes: the label selector of certmint's pods, asked through the API
    /// server for the trust interlock's findings.
    #[arg(long, default_value = crate::cli::rotation::CERTMINT_PODS)]
    selector: String,
    /// With --kubernetes: certmint's admin port on those pods.
    #[arg(long, default_value_t = crate::cli::rotation::ADMIN_PORT)]
    admin_port: u16,
    /// Warn (exit 1) when anything expires within this window.
    #[arg(long, default_value = "60d", value_parser = parse_duration)]
    warn_within: Duration,
    /// Leaf lifetime the issuer chain must outlive (serve's issuance.lifetime).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    lifetime: Duration,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// Trust domain of the probe identity used to test-sign (as configured for serve).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Control-plane namespace of the probe identity (as configured for serve).
    #[arg(long, default_value = "linkerd")]
    control_namespace: String,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let naming = Naming::new(&args.control_namespace, &args.trust_domain)
        .context("--trust-domain / --control-namespace")?;
    let inputs = if args.kubernetes {
        kube::fetch(&args.kube).await?
    } else {
        read_files(&args)?
    };
    let settings = evaluate::Settings {
        now: SystemTime::now(),
        warn_within: args.warn_within,
        leaf_lifetime: args.lifetime,
        probe: certmint_core::ca::probe_names(&naming),
        keys: args.hsm.boxed_resolver(&inputs.issuer.key_pem)?,
    };
    let mut report = evaluate(&inputs, &settings);
    if args.kubernetes {
        report
            .findings
            .push(kube::token_authn_finding(&args.kube).await);
    }
    if let Some(admin) = &args.admin {
        let trust = crate::cli::rotation::fetch(admin).await?;
        report.findings.extend(trust_findings(&trust));
        report.settle();
    } else if args.kubernetes {
        report.findings.extend(
            replica_trust_findings(&args.kube.replicas(&args.selector, args.admin_port).await)
                .await,
        );
        report.settle();
    }
    match args.output {
        OutputFormat::Table => print!("{}", render::table(&report)),
        OutputFormat::Json => print!("{}", render::json(&report)?),
    }
    Ok(ExitCode::from(report.exit_code))
}

/// The interlock's view from certmint's replicas, reached through the API server: the
/// first replica that answers speaks for all (they watch the same pods); one that cannot be
/// read is an error.
async fn replica_trust_findings(replicas: &crate::cli::rotation::ReplicaArgs) -> Vec<Finding> {
    let object = "running workloads".to_owned();
    let answers = match crate::cli::rotation::through_api_server(replicas).await {
        Ok(answers) => answers,
        Err(e) => {
            return vec![Finding {
                severity: Severity::Warn,
                object,
                message: format!("the trust interlock was not checked: {e:#}"),
            }];
        }
    };
    if answers.is_empty() {
        return vec![Finding {
            severity: Severity::Ok,
            object,
            message: format!(
                "the trust interlock was not checked: no running certmint pod in namespace {} with labels {}",
                replicas.namespace, replicas.selector
            ),
        }];
    }
    let mut out = Vec::new();
    let mut spoken = false;
    for (replica, answer) in answers {
        match answer {
            Ok(t) if !spoken => {
                out.extend(trust_findings(&t));
                spoken = true;
            }
            Ok(_) => {}
            Err(e) => out.push(Finding {
                severity: Severity::Error,
                object: format!("certmint replica {replica}"),
                message: format!("cannot read its trust report: {e:#}"),
            }),
        }
    }
    out
}

/// The interlock's view as findings.
fn trust_findings(t: &certmint_k8s::trust::TrustReport) -> Vec<Finding> {
    let object = "running workloads".to_owned();
    let finding = |severity, message: String| Finding {
        severity,
        object: object.clone(),
        message,
    };
    if !t.interlock {
        return vec![finding(
            Severity::Ok,
            "not watched (the interlock is off): what they trust is unknown to certmint".into(),
        )];
    }
    let refusing: Vec<String> = t
        .refusing_active()
        .map(|w| format!("{}/{}", w.namespace, w.name))
        .collect();
    let mut out = Vec::new();
    if !refusing.is_empty() {
        out.push(finding(
            Severity::Error,
            format!(
                "{} do not trust the active issuer's anchor ({}): restart them with the current bundle (certmint rotation status)",
                refusing.len(),
                refusing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for a in &t.removed_early {
        out.push(Finding {
            severity: Severity::Error,
            object: format!("trust anchor {}", a.subject),
            message: format!(
                "removed from the bundle while leaves under it live: put it back until {}",
                a.safe_from
            ),
        });
    }
    if let Some(p) = &t.pending {
        let n = t.blocking_pending().count();
        out.push(finding(
            Severity::Warn,
            format!(
                "issuer {} is held until {n} of them trust its anchor",
                p.issuer
            ),
        ));
    }
    if out.is_empty() {
        out.push(finding(
            Severity::Ok,
            format!("{} trust the active issuer's anchor", t.workloads.len()),
        ));
    }
    out
}

fn read_files(args: &CheckArgs) -> anyhow::Result<Inputs> {
    let (Some(anchors), Some(dir)) = (&args.trust_anchors, &args.issuer_dir) else {
        return Err(anyhow!(
            "give --trust-anchors FILE and --issuer-dir DIR, or --kubernetes"
        ));
    };
    let anchors_pem = read_bounded(anchors, MAX_PEM_BYTES)
        .with_context(|| format!("cannot read --trust-anchors {}", anchors.display()))?;
    let issuer = read_issuer_dir(dir).map_err(|e| anyhow!("--issuer-dir: {e}"))?;
    Ok(Inputs {
        anchors_source: anchors.display().to_string(),
        anchors_pem,
        issuer_source: dir.display().to_string(),
        issuer,
    })
}
