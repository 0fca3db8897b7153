//! `certmint rotation status | plan`: where a trust-anchor rotation stands and what blocks
//! its next step (from certmint's admin endpoint `/trust`), and the steps of one for this
//! cluster (offline).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::describe::OutputFormat;
use certmint_k8s::trust::TrustReport;
use certmint_k8s::trust::report::{AnchorReport, WorkloadReport};

/// A `/trust` answer larger than this is refused.
const MAX_REPORT: usize = 64 << 20;

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

/// Where certmint's replicas are, for reaching them through the API server.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long = "kubeconfig", id = "replica_kubeconfig")]
    pub kubeconfig: Option<PathBuf>,
    /// certmint's namespace.
    #[arg(long = "certmint-namespace", default_value = "certmint")]
    pub namespace: String,
    /// The label selector of certmint's pods.
    #[arg(long, default_value = CERTMINT_PODS)]
    pub selector: String,
    /// certmint's admin port.
    #[arg(long, default_value_t = ADMIN_PORT)]
    pub admin_port: u16,
}

/// The chart's label on certmint's pods, and its admin port.
pub const CERTMINT_PODS: &str = "app.kubernetes.io/name=certmint";
pub const ADMIN_PORT: u16 = 9990;

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
        RotationCommand::Plan(a) => plan(a),
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
            Ok(r) => judge(r),
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

/// Every running replica's `/trust`, through the API server's pod proxy (each replica has
/// its own pod watch and history; they can disagree, e.g. one restarted in the middle).
/// Empty when no certmint pod runs there.
pub(crate) async fn through_api_server(
    args: &ReplicaArgs,
) -> anyhow::Result<Vec<(String, anyhow::Result<TrustReport>)>> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let client = certmint_k8s::client::client(args.kubeconfig.as_deref()).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &args.namespace);
    let pods = tokio::time::timeout(
        API_TIMEOUT,
        api.list(&ListParams::default().labels(&args.selector)),
    )
    .await
    .context("the API server did not answer the pod list within 30 s")?
    .with_context(|| {
        format!(
            "cannot list certmint's pods in namespace {}",
            args.namespace
        )
    })?;
    let running: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let mut out = Vec::new();
    for name in running {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{name}:{}/proxy/trust",
            args.namespace, args.admin_port
        );
        let report = proxied(&client, &path).await;
        out.push((format!("{}/{name}", args.namespace), report));
    }
    Ok(out)
}

async fn proxied(client: &kube::Client, path: &str) -> anyhow::Result<TrustReport> {
    let request = http::Request::get(path).body(kube::client::Body::empty())?;
    let answer = tokio::time::timeout(API_TIMEOUT, client.send(request))
        .await
        .context("no answer within 30 s")?
        .context("the API server's pod proxy failed (needs get on pods/proxy)")?;
    if !answer.status().is_success() {
        bail!(
            "the pod proxy answered {} (needs get on pods/proxy in certmint's namespace)",
            answer.status()
        );
    }
    let body = Limited::new(answer.into_body(), MAX_REPORT)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the trust report: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).context("the answer is not certmint's trust report")
}

/// Bounds each read through the API server (kube retries throttling for minutes).
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) async fn fetch(admin: &str) -> anyhow::Result<TrustReport> {
    let url = format!("{}/trust", admin.trim_end_matches('/'));
    let uri: hyper::Uri = url.parse().with_context(|| format!("--admin {admin}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .with_context(|| format!("{url} did not answer within 10 s"))?
        .with_context(|| format!("cannot reach certmint's admin endpoint {url} (port-forward it: kubectl -n certmint port-forward deploy/certmint 9990; or use --kubernetes)"))?;
    if !answer.status().is_success() {
        bail!("{url} answered {}", answer.status());
    }
    let body = Limited::new(answer.into_body(), MAX_REPORT)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading {url}: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).with_context(|| format!("{url} is not certmint's trust report"))
}

/// The exit code and what to tell the operator.
fn judge(r: &TrustReport) -> (u8, String) {
    if !r.interlock {
        let text = "the interlock is off (certmint has no pod watch: files mode or no Kubernetes client); nothing is known about what workloads trust\n";
        return (0, text.to_owned());
    }
    if !r.synced {
        return (
            1,
            "waiting: certmint has not loaded the pod list yet\n".to_owned(),
        );
    }
    let mut out = format!(
        "phase: {}\n{} running meshed workload(s); active issuer's anchor {}\n",
        phase(r),
        r.workloads.len(),
        short(r.active_anchor.as_deref())
    );
    out += &anchors(r);
    let refusing: Vec<&WorkloadReport> = r.refusing_active().collect();
    let mut unsafe_state = false;
    if !refusing.is_empty() {
        out += &format!(
            "UNSAFE: {} running workload(s) do not trust the active issuer's anchor; their connections fail until they are restarted with a bundle that holds it:\n",
            refusing.len()
        );
        out += &pods(&refusing);
        unsafe_state = true;
    }
    for a in &r.removed_early {
        out += &format!(
            "UNSAFE: anchor {} ({}) was removed from the bundle while leaves under it live; put it back until {}\n",
            a.subject,
            short(Some(&a.fingerprint)),
            a.safe_from
        );
        unsafe_state = true;
    }
    if unsafe_state {
        return (2, out);
    }
    let unknown: Vec<&WorkloadReport> = r.unknown().collect();
    if !unknown.is_empty() {
        out += &format!(
            "note: certmint cannot tell what {} workload(s) trust (a ConfigMap version it did not see, a value that does not parse, or an Istio/trust-bundle workload older than this certmint process, known after one leaf lifetime); they count as not trusting a new anchor:\n",
            unknown.len()
        );
        out += &pods(&unknown);
    }
    if let Some(p) = &r.pending {
        let blocking: Vec<&WorkloadReport> = r.blocking_pending().collect();
        out += &format!(
            "waiting: issuer {} (anchor {}) is held until {} workload(s) trust its anchor; restart them with the overlap bundle:\n",
            p.issuer,
            short(Some(&p.anchor)),
            blocking.len()
        );
        out += &pods(&blocking);
        return (1, out);
    }
    let mut waiting = false;
    for a in r.incoming() {
        let lacking: Vec<&WorkloadReport> = r.lacking(&a.fingerprint).collect();
        if lacking.is_empty() {
            out += &format!(
                "ready: every running workload trusts the anchor {} ({}); an issuer under it will be activated at once\n",
                a.subject,
                short(Some(&a.fingerprint))
            );
            continue;
        }
        out += &format!(
            "waiting: {} workload(s) do not trust the anchor {} ({}) yet; restart them with the overlap bundle before writing an issuer under it (it would be held):\n",
            lacking.len(),
            a.subject,
            short(Some(&a.fingerprint))
        );
        out += &pods(&lacking);
        waiting = true;
    }
    if waiting {
        return (1, out);
    }
    let retiring: Vec<&AnchorReport> = r.retiring().collect();
    if !retiring.is_empty() {
        for a in retiring {
            out += &format!(
                "waiting: leaves under the old anchor {} ({}) live until {}; remove it from the bundle after that\n",
                a.subject,
                short(Some(&a.fingerprint)),
                a.safe_to_remove_at.as_deref().unwrap_or("?")
            );
        }
        return (1, out);
    }
    out +=
        "nothing blocks: no issuer is waiting, every running workload trusts the active anchor\n";
    (0, out)
}

/// Where a rotation stands, in one word.
fn phase(r: &TrustReport) -> &'static str {
    let unused = r.anchors.iter().filter(|a| a.issuer.is_none()).count();
    match (&r.pending, unused) {
        _ if r.refusing_active().next().is_some() || !r.removed_early.is_empty() => "unsafe",
        (Some(_), _) => "new issuer held",
        (None, 0) => "steady (one anchor in use)",
        (None, _) if r.anchors.iter().any(|a| a.retired_at.is_some()) => {
            "new issuer active, old anchor still in the bundle"
        }
        (None, _) => "overlap bundle (an anchor no issuer uses yet, or an old one)",
    }
}

/// Each anchor of the bundle: who uses it, who does not trust it, when it may go.
fn anchors(r: &TrustReport) -> String {
    r.anchors
        .iter()
        .map(|a| {
            let role = match a.issuer.as_deref() {
                Some(which) => format!("the {which} issuer chains to it"),
                None => format!(
                    "no issuer uses it; {} workload(s) do not trust it",
                    a.untrusting
                ),
            };
            let removable = match (&a.safe_to_remove_at, a.safe_to_remove_now) {
                (None, _) => "stays while in use".to_owned(),
                (Some(_), true) => "may be removed now".to_owned(),
                (Some(t), false) => format!("may be removed from {t}"),
            };
            format!(
                "  anchor {} ({}, until {}): {role}; {removable}\n",
                a.subject,
                short(Some(&a.fingerprint)),
                a.not_after
            )
        })
        .collect()
}

fn pods(list: &[&WorkloadReport]) -> String {
    list.iter()
        .map(|w| {
            let knows = match &w.anchors {
                Some(a) => format!(
                    "trusts {}",
                    a.iter()
                        .map(|f| short(Some(f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "trust unknown".to_owned(),
            };
            let owner = w.owner.as_deref().unwrap_or("no controller");
            format!(
                "  {}/{} ({owner}, {}, {knows})\n    fix: {}\n",
                w.namespace,
                w.name,
                w.source,
                restart(w)
            )
        })
        .collect()
}

/// The command that replaces the pod: its controller restarted, else the pod deleted.
fn restart(w: &WorkloadReport) -> String {
    let ns = &w.namespace;
    match w.owner.as_deref().and_then(|o| o.split_once('/')) {
        // A ReplicaSet's Deployment is its name without the pod-template hash.
        Some(("replicaset", rs)) => match rs.rsplit_once('-') {
            Some((deploy, _)) => format!("kubectl -n {ns} rollout restart deployment/{deploy}"),
            None => format!("kubectl -n {ns} delete pod {}", w.name),
        },
        Some((kind @ ("statefulset" | "daemonset" | "deployment"), name)) => {
            format!("kubectl -n {ns} rollout restart {kind}/{name}")
        }
        _ => format!("kubectl -n {ns} delete pod {}", w.name),
    }
}

fn short(fingerprint: Option<&str>) -> String {
    match fingerprint {
        Some(f) if f.len() > 16 => format!("sha256:{}…", &f[..16]),
        Some(f) => format!("sha256:{f}"),
        None => "(none)".to_owned(),
    }
}

fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let bytes = certmint_core::fsutil::read_bounded(&a.new_anchor, 1 << 20)
        .with_context(|| format!("cannot read --new-anchor {}", a.new_anchor.display()))?;
    let anchor = certmint_core::ca::TrustAnchors::from_pem(&bytes, std::time::SystemTime::now())
        .map_err(|e| {
            anyhow::anyhow!(
                "--new-anchor {}: {e}; pass the root made by `certmint ca root`",
                a.new_anchor.display()
            )
        })?;
    let first = &anchor.certs()[0];
    let mut text = format!(
        "# New trust anchor {} (sha256 {}), valid until {}.\n",
        first.subject,
        first.fingerprint_sha256,
        certmint_core::ca::fmt_time(first.not_after)
    );
    let new = a.new_anchor.display();
    let (ns, secret, cm, l5d) = (&a.namespace, &a.secret, &a.configmap, &a.linkerd_namespace);
    let current = match &a.trust_anchors {
        Some(p) => p.display().to_string(),
        None => "current.pem".to_owned(),
    };
    let fetch = match &a.trust_anchors {
        Some(_) => String::new(),
        None => format!(
            "kubectl -n {ns} get configmap {cm} -o jsonpath='{{.data.ca-bundle\\.crt}}' > current.pem\n"
        ),
    };
    text += &format!(
        "# Trust-anchor rotation for namespace {ns} (issuer Secret {secret}, anchors ConfigMap {cm}).
# certmint holds a new issuer until every running meshed pod trusts its anchor. Between the
# steps, `certmint rotation status --kubernetes` (every replica through the API server; or
# --admin http://127.0.0.1:9990 after a port-forward) says what blocks the next one:
# exit 0 nothing blocks, 1 waiting (on what, until when), 2 unsafe.

# 1. The overlap bundle: the anchors in use and the new one.
{fetch}certmint ca bundle {current} {new} > overlap.pem
kubectl -n {ns} create configmap {cm} --from-file=ca-bundle.crt=overlap.pem --dry-run=client -o yaml | kubectl apply -f -
#    (anchors from the chart: helm upgrade certmint helm/certmint -n {ns} --reuse-values --set-file trustAnchorsPEM=overlap.pem)
#    certmint serves it at once; with pod certificates it rewrites its ClusterTrustBundle.

# 2. Give every workload the overlap bundle.
#    Linkerd: the injector writes identityTrustAnchorsPEM into each pod; proxies read it at start.
linkerd upgrade --identity-trust-anchors-file=overlap.pem | kubectl apply -f -
kubectl -n {l5d} create configmap linkerd-identity-trust-roots --from-file=ca-bundle.crt=overlap.pem --dry-run=client -o yaml | kubectl apply -f -
kubectl -n {l5d} rollout restart deploy
#    then restart the meshed workloads; each namespace with one:
#    kubectl -n NAMESPACE rollout restart deploy,statefulset,daemonset
certmint rotation status --kubernetes   # lists every pod that does not trust the new anchor yet, with its restart command
#    Istio (sidecars, ztunnel): nothing to restart. They take the roots of every
#    CreateCertificate answer and hold the overlap after their next renewal (within one
#    leaf lifetime); istio-ca-root-cert follows the chart's anchors.
#    Pod certificates: the kubelet re-projects the ClusterTrustBundle within about a minute.

# 3. The new issuer, under the new root (its key offline or in an HSM, docs/operations.md §12).
certmint ca issuer --ca-cert {new} --ca-key new-root.key --cert issuer-new/tls.crt --key issuer-new/tls.key
certmint check --trust-anchors overlap.pem --issuer-dir issuer-new
kubectl -n {ns} create secret tls {secret} --cert=issuer-new/tls.crt --key=issuer-new/tls.key --dry-run=client -o yaml | kubectl apply -f -
#    certmint activates it by itself once no running pod refuses it (an IssuerUpdated
#    Event); until then the old issuer keeps signing and:
certmint rotation status --kubernetes   # exit 1: held, with the pods and the command that fixes each

# 4. Wait until no leaf from the old issuer is alive: one leaf lifetime (plus clock skew)
#    after the new issuer became active. status gives the time:
certmint rotation status --kubernetes   # exit 1 'leaves under the old anchor ... live until T', then exit 0 'may be removed now'

# 5. Drop the old anchor (earlier is refused by status: exit 2 until it is put back).
kubectl -n {ns} create configmap {cm} --from-file=ca-bundle.crt={new} --dry-run=client -o yaml | kubectl apply -f -
linkerd upgrade --identity-trust-anchors-file={new} | kubectl apply -f -
kubectl -n {l5d} create configmap linkerd-identity-trust-roots --from-file=ca-bundle.crt={new} --dry-run=client -o yaml | kubectl apply -f -
#    Workloads that still trust the old anchor too are harmless; restart them at leisure so
#    that nothing trusts it any more.
certmint rotation status --kubernetes   # exit 0, phase steady\n"
    );
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certmint_k8s::trust::report::PendingReport;

    fn w(name: &str, owner: Option<&str>, active: bool, pending: Option<bool>) -> WorkloadReport {
        WorkloadReport {
            namespace: "shop".into(),
            name: name.into(),
            owner: owner.map(str::to_owned),
            source: "linkerd-env".into(),
            anchors: Some(vec!["ab".repeat(32)]),
            trusts_active: active,
            trusts_pending: pending,
        }
    }

    fn report(workloads: Vec<WorkloadReport>, pending: bool) -> TrustReport {
        TrustReport {
            interlock: true,
            synced: true,
            active_anchor: Some("ab".repeat(32)),
            pending: pending.then(|| PendingReport {
                issuer: "CN=b".into(),
                anchor: "cd".repeat(32),
            }),
            workloads,
            ..TrustReport::default()
        }
    }

    fn anchor(issuer: Option<&str>, retired: bool, safe_now: bool) -> AnchorReport {
        AnchorReport {
            fingerprint: "ef".repeat(32),
            subject: "CN=old root".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            issuer: issuer.map(str::to_owned),
            retired_at: retired.then(|| "2026-12-06T10:00:00Z".to_owned()),
            safe_to_remove_at: issuer.is_none().then(|| "2026-12-07T10:00:00Z".to_owned()),
            safe_to_remove_now: safe_now,
            untrusting: 0,
        }
    }

    #[test]
    fn exit_codes_say_nothing_blocks_waiting_or_unsafe() {
        let (code, _) = judge(&report(vec![w("a", None, true, None)], false));
        assert_eq!(code, 0);
        let (code, text) = judge(&report(
            vec![w(
                "web-5d9c-x1",
                Some("replicaset/web-5d9c"),
                true,
                Some(false),
            )],
            true,
        ));
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("shop/web-5d9c-x1 (replicaset/web-5d9c, linkerd-env")
                && text.contains("kubectl -n shop rollout restart deployment/web"),
            "{text}"
        );
        let (code, text) = judge(&report(vec![w("old", None, false, None)], false));
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("kubectl -n shop delete pod old"), "{text}");
        let off = TrustReport::default();
        assert_eq!(judge(&off).0, 0);
        // Unknown is not refusing: said, but not unsafe.
        let mut unknown = w("istio-1", None, false, None);
        unknown.anchors = None;
        let (code, text) = judge(&report(vec![unknown], false));
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("cannot tell what 1 workload(s) trust"),
            "{text}"
        );
    }

    #[test]
    fn the_old_anchor_waits_for_its_leaves_and_removing_it_early_is_unsafe() {
        let mut r = report(vec![w("a", None, true, None)], false);
        r.anchors = vec![
            anchor(Some("active"), false, false),
            anchor(None, true, false),
        ];
        let (code, text) = judge(&r);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("live until 2026-12-07T10:00:00Z") && text.contains("old anchor"),
            "{text}"
        );
        r.anchors[1].safe_to_remove_now = true;
        let (code, text) = judge(&r);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("may be removed now"), "{text}");
        // An incoming anchor that a workload does not trust yet: restart it first.
        let mut incoming = anchor(None, false, false);
        incoming.fingerprint = "12".repeat(32);
        r.anchors.push(incoming);
        let (code, text) = judge(&r);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("1 workload(s) do not trust the anchor")
                && text.contains("kubectl -n shop delete pod a"),
            "{text}"
        );
        r.workloads[0].anchors = Some(vec!["ab".repeat(32), "12".repeat(32)]);
        let (code, text) = judge(&r);
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("ready: every running workload trusts"),
            "{text}"
        );
        r.anchors.pop();
        r.anchors.pop();
        r.removed_early = vec![certmint_k8s::trust::report::RemovedAnchor {
            fingerprint: "ef".repeat(32),
            subject: "CN=old root".into(),
            safe_from: "2026-12-07T10:00:00Z".into(),
        }];
        let (code, text) = judge(&r);
        assert_eq!(code, 2, "{text}");
        assert!(
            text.contains("put it back until 2026-12-07T10:00:00Z"),
            "{text}"
        );
    }
}
