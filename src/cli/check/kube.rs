//! The live issuer Secret and trust-anchor ConfigMap, read once through the kubeconfig.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::{Finding, Inputs, Severity};
use certmint_core::ca::IssuerMaterial;
use certmint_k8s::authn::keyset::KeySet;
use clap::builder::TypedValueParser;

use crate::config::LocalVerification;

/// The file-mode arguments; the Kubernetes ones make no sense with them.
const FILE_ARGS: [&str; 2] = ["trust_anchors", "issuer_dir"];
/// kube retries throttled requests for minutes by itself; this bounds each read.
const API_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Namespace of the Secret and ConfigMap (default: the kubeconfig context's).
    #[arg(long, conflicts_with_all = FILE_ARGS)]
    namespace: Option<String>,
    /// The issuer Secret (kubernetes.io/tls or linkerd.io/tls).
    #[arg(long, default_value = "certmint-issuer", conflicts_with_all = FILE_ARGS)]
    secret: String,
    /// The trust-anchor ConfigMap.
    #[arg(
        long,
        default_value = "certmint-trust-anchors",
        conflicts_with_all = FILE_ARGS
    )]
    configmap: String,
    /// The ConfigMap key holding the PEM bundle.
    #[arg(long, default_value = "ca-bundle.crt", conflicts_with_all = FILE_ARGS)]
    key: String,
    /// kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, conflicts_with_all = FILE_ARGS)]
    kubeconfig: Option<PathBuf>,
    /// serve's authn.kubernetes.local_verification, to report what it will rely on.
    #[arg(long, default_value = "fallback", conflicts_with_all = FILE_ARGS, value_parser = clap::builder::PossibleValuesParser::new(LocalVerification::NAMES).try_map(|s| s.parse::<LocalVerification>()))]
    local_verification: LocalVerification,
}

impl KubeArgs {
    /// certmint's replicas: the pods `selector` selects in this namespace (the
    /// kubeconfig context's when --namespace is not given), on `admin_port`.
    pub async fn replicas(
        &self,
        selector: &str,
        admin_port: u16,
    ) -> crate::cli::rotation::ReplicaArgs {
        let namespace = match &self.namespace {
            Some(ns) => ns.clone(),
            None => certmint_k8s::client::client(self.kubeconfig.as_deref())
                .await
                .map(|c| c.default_namespace().to_owned())
                .unwrap_or_else(|_| "certmint".to_owned()),
        };
        crate::cli::rotation::ReplicaArgs {
            kubeconfig: self.kubeconfig.clone(),
            namespace,
            selector: selector.to_owned(),
            admin_port,
        }
    }
}

/// What token authentication will rely on: the mode and whether the API server's
/// service-account key set can be read with these credentials.
pub async fn token_authn_finding(args: &KubeArgs) -> Finding {
    let mode = args.local_verification;
    let object = "token authentication".to_owned();
    let finding = |message: String| Finding {
        severity: Severity::Ok,
        object: object.clone(),
        message,
    };
    if mode == LocalVerification::Off {
        return finding("local verification off: every new token costs a TokenReview".into());
    }
    let keys = match certmint_k8s::client::client(args.kubeconfig.as_deref()).await {
        Ok(client) => {
            let metrics = std::sync::Arc::new(certmint_k8s::metrics::Metrics::default());
            let set = KeySet::new(client, None, API_TIMEOUT, metrics);
            set.refresh().await.map(|()| set.current())
        }
        Err(e) => {
            return finding(format!(
                "local verification {}: no client: {e}",
                mode.as_str()
            ));
        }
    };
    finding(match &keys {
        Ok(Some(k)) => format!(
            "local verification {}: service-account key set readable ({} RS256/ES256 keys, issuer {})",
            mode.as_str(),
            k.keys.len(),
            k.issuer
        ),
        Ok(None) | Err(_) => format!(
            "local verification {}: service-account key set NOT readable ({}); every token will need a TokenReview; grant get on nonResourceURLs /.well-known/openid-configuration and /openid/v1/jwks",
            mode.as_str(),
            keys.as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        ),
    })
}

/// Reads both objects.
pub async fn fetch(args: &KubeArgs) -> anyhow::Result<Inputs> {
    let client = certmint_k8s::client::client(args.kubeconfig.as_deref())
        .await
        .context(
            "check --kubernetes needs cluster access: pass --kubeconfig FILE or set KUBECONFIG",
        )?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let secret: Secret = get(&client, &ns, &args.secret, "--secret").await?;
    let cm: ConfigMap = get(&client, &ns, &args.configmap, "--configmap").await?;
    let issuer_source = format!("Secret {ns}/{}", args.secret);
    let anchors_source = format!("ConfigMap {ns}/{} key {}", args.configmap, args.key);
    Ok(Inputs {
        anchors_pem: bundle_from(&cm, &args.key, &anchors_source)?,
        issuer: issuer_from(&secret, &issuer_source)?,
        anchors_source,
        issuer_source,
    })
}

async fn get<K>(client: &Client, ns: &str, name: &str, flag: &str) -> anyhow::Result<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match tokio::time::timeout(API_TIMEOUT, api.get(name)).await {
        Err(_) => {
            bail!("timed out after 30s reading {kind} {ns}/{name}: is the API server reachable?")
        }
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
            bail!("{kind} {ns}/{name} not found: check --namespace and {flag}")
        }
        Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => bail!(
            "not allowed to get {kind} {ns}/{name} ({}): use credentials that may read it",
            s.message
        ),
        Ok(Err(e)) => Err(e).with_context(|| format!("cannot read {kind} {ns}/{name}")),
    }
}

/// `tls.crt`/`tls.key` (kubernetes.io/tls) or `crt.pem`/`key.pem` (linkerd.io/tls).
fn issuer_from(secret: &Secret, source: &str) -> anyhow::Result<IssuerMaterial> {
    let data = secret.data.clone().unwrap_or_default();
    for (crt, key) in [("tls.crt", "tls.key"), ("crt.pem", "key.pem")] {
        match (data.get(crt), data.get(key)) {
            (Some(c), Some(k)) => {
                return Ok(IssuerMaterial {
                    cert_pem: c.0.clone(),
                    key_pem: k.0.clone(),
                });
            }
            (Some(_), None) => bail!("{source} has {crt} but no {key}"),
            (None, Some(_)) => bail!("{source} has {key} but no {crt}"),
            (None, None) => {}
        }
    }
    bail!("{source} has neither tls.crt/tls.key nor crt.pem/key.pem")
}

fn bundle_from(cm: &ConfigMap, key: &str, source: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(text) = cm.data.as_ref().and_then(|d| d.get(key)) {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(bytes) = cm.binary_data.as_ref().and_then(|d| d.get(key)) {
        return Ok(bytes.0.clone());
    }
    let keys: Vec<&String> = cm.data.iter().flat_map(|d| d.keys()).collect();
    bail!("{source}: the ConfigMap has no such key (keys: {keys:?}); pass --key")
}
