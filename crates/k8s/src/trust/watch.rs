//! The ConfigMaps Linkerd pods may read their trust bundle from (`valueFrom`), followed so
//! that the index knows which version a proxy read when it started.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use tokio::sync::watch;

use super::TrustIndex;

/// Follows `namespace/name` until shutdown, telling `index` each key's content.
pub async fn run_configmap(
    client: Client,
    namespace: String,
    name: String,
    every: Duration,
    index: Arc<TrustIndex>,
    shutdown: watch::Receiver<bool>,
) {
    let (ns, n) = (namespace.clone(), name.clone());
    let seen = index.clone();
    let apply = move |cm: &ConfigMap| {
        for (key, value) in cm.data.iter().flatten() {
            seen.configmap(&ns, &n, key, Some(value));
        }
    };
    let (ns, n) = (namespace.clone(), name.clone());
    let missing = move |_: &str| index.configmap_gone(&ns, &n);
    crate::sources::kube::follow(
        Api::<ConfigMap>::namespaced(client, &namespace),
        name,
        every,
        apply,
        missing,
        shutdown,
    )
    .await;
}
