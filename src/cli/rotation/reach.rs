//! Reaching certmint's `/trust`: one admin endpoint, or every replica through the API
//! server's pod proxy.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use certmint_k8s::trust::TrustReport;

/// A `/trust` answer larger than this is refused.
const MAX_REPORT: usize = 64 << 20;

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
