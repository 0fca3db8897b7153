//! Issuer from a Secret and anchors from a ConfigMap, through the Kubernetes API: a watch
//! (field selector on the name) that survives errors, dropped connections and `410 Gone`,
//! plus a periodic full re-read so a dead watch never pins an old issuer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::metrics::Source;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Reloader;
use super::files::MAX_PEM_BYTES;
use certmint_core::ca::IssuerMaterial;

const SOURCE: Source = Source::Kubernetes;
/// Bound on one re-read GET.
const GET_TIMEOUT: Duration = Duration::from_secs(30);

/// The issuer material in a `kubernetes.io/tls` or `linkerd.io/tls` Secret.
pub fn issuer_from_secret(secret: &Secret) -> Result<IssuerMaterial, String> {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| data.get(k).map(|v| v.0.clone());
    let (crt, key) = match secret.type_.as_deref() {
        Some("linkerd.io/tls") => (get("crt.pem"), get("key.pem")),
        _ => match (get("tls.crt"), get("tls.key")) {
            (Some(c), Some(k)) => (Some(c), Some(k)),
            _ => (get("crt.pem"), get("key.pem")),
        },
    };
    let (Some(cert_pem), Some(key_pem)) = (crt, key) else {
        return Err("Secret has neither tls.crt/tls.key nor crt.pem/key.pem".into());
    };
    if cert_pem.len() as u64 > MAX_PEM_BYTES || key_pem.len() as u64 > MAX_PEM_BYTES {
        return Err("Secret data is larger than 1 MiB".into());
    }
    Ok(IssuerMaterial { cert_pem, key_pem })
}

/// The anchors bundle under `key` in a ConfigMap (`data` or `binaryData`).
pub fn anchors_from_configmap(cm: &ConfigMap, key: &str) -> Result<Vec<u8>, String> {
    let pem = cm
        .data
        .as_ref()
        .and_then(|d: &BTreeMap<String, String>| d.get(key).map(|s| s.as_bytes().to_vec()))
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(key).map(|b| b.0.clone()))
        })
        .ok_or_else(|| format!("ConfigMap has no key {key:?}"))?;
    if pem.len() as u64 > MAX_PEM_BYTES {
        return Err("ConfigMap bundle is larger than 1 MiB".into());
    }
    Ok(pem)
}

/// Keeps the issuer Secret applied until shutdown.
pub async fn run_issuer(
    client: Client,
    ns: String,
    name: String,
    every: Duration,
    reloader: Arc<Reloader>,
    shutdown: watch::Receiver<bool>,
) {
    let r = reloader.clone();
    let apply = move |s: &Secret| match issuer_from_secret(s) {
        Ok(m) => {
            let forced = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::OVERRIDE_ANNOTATION))
                .is_some_and(|v| v == "true");
            r.issuer_override(forced);
            r.issuer_read(SOURCE, m)
        }
        Err(e) => r.issuer_invalid(SOURCE, &e),
    };
    let missing = move |why: &str| reloader.issuer_missing(SOURCE, why);
    follow(
        Api::<Secret>::namespaced(client, &ns),
        name,
        every,
        apply,
        missing,
        shutdown,
    )
    .await;
}

/// Keeps the anchors ConfigMap applied until shutdown.
pub async fn run_anchors(
    client: Client,
    ns: String,
    name: String,
    key: String,
    every: Duration,
    reloader: Arc<Reloader>,
    shutdown: watch::Receiver<bool>,
) {
    let r = reloader.clone();
    let apply = move |cm: &ConfigMap| match anchors_from_configmap(cm, &key) {
        Ok(pem) => r.anchors_read(SOURCE, &pem),
        Err(e) => r.anchors_invalid(SOURCE, &e),
    };
    let missing = move |why: &str| reloader.anchors_missing(SOURCE, why);
    follow(
        Api::<ConfigMap>::namespaced(client, &ns),
        name,
        every,
        apply,
        missing,
        shutdown,
    )
    .await;
}

/// Watches one named object and re-reads it every `every`; never ends on an error.
pub(crate) async fn follow<K>(
    api: Api<K>,
    name: String,
    every: Duration,
    apply: impl Fn(&K),
    missing: impl Fn(&str),
    mut shutdown: watch::Receiver<bool>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), config)
        .default_backoff()
        .boxed();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut found_in_list = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            ev = events.next() => match ev {
                Some(Ok(Event::Apply(o) | Event::InitApply(o))) => { found_in_list = true; apply(&o) }
                Some(Ok(Event::Delete(_))) => missing("deleted"),
                Some(Ok(Event::Init)) => found_in_list = false,
                Some(Ok(Event::InitDone)) if !found_in_list => missing("not found"),
                Some(Ok(Event::InitDone)) => {}
                Some(Err(e)) => tracing::warn!(object = %name, error = %e, "watch error; the watch restarts with backoff"),
                None => return,
            },
            _ = tick.tick() => match tokio::time::timeout(GET_TIMEOUT, api.get_opt(&name)).await {
                Ok(Ok(Some(o))) => apply(&o),
                Ok(Ok(None)) => missing("not found"),
                Ok(Err(e)) => tracing::warn!(object = %name, error = %e, "periodic re-read failed"),
                Err(_) => tracing::warn!(object = %name, "periodic re-read timed out"),
            },
        }
    }
}
