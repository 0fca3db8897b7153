//! A fake Kubernetes API server for integration tests: HTTPS on 127.0.0.1 with a throwaway
//! CA, reached by the real `kube` client through a generated kubeconfig. It verifies the
//! service-account tokens it mints (TokenReview), serves Secrets, ConfigMaps, Pods,
//! ServiceAccounts and Nodes with get/list/watch, records Events, answers
//! SelfSubjectAccessReviews, counts requests by kind and injects faults on demand. Include
//! it with `use certmint_testsupport::fake_kube;`.

mod authn;
mod cert_versions;
mod certificates;
mod conn;
mod counters;
mod events;
mod faults;
mod kubeconfig;
mod kubelet;
mod outage;
mod owners;
mod resources;
mod review;
mod seed;
mod selector;
mod server;
mod signing;
mod status;
mod store;
mod tls;
mod tokens;
mod trust_bundles;
mod watch;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{net::TcpListener, sync::watch as channel, task::JoinHandle};

pub use cert_versions::CertificateVersions;
pub use counters::RequestKind;
#[allow(unused_imports)]
pub use faults::Fault;
pub use kubelet::PodCertRequest;
#[allow(unused_imports)]
pub use outage::Outage;
#[allow(unused_imports)]
pub use signing::KeyAlg;
#[allow(unused_imports)]
pub use tokens::{ISSUER, LEGACY_ISSUER, TokenSpec};

use server::ServerState;
use signing::{KeyRing, SigningKey};
use store::{Kind, Store};

/// How many changes watches can resume from before they get 410 Gone.
const HISTORY: usize = 1000;

/// A running fake API server. Clones share it; it stops when the last clone is dropped or
/// [`FakeKube::shutdown`] is called (open connections, pooled ones included, are cut).
#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Handle>,
}

struct Handle {
    state: Arc<ServerState>,
    url: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    foreign_key: SigningKey,
    shutdown: channel::Sender<bool>,
    /// True while connections are refused (the outage switch).
    refuse: channel::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Handle {
    fn stop(&self) {
        self.shutdown.send_replace(true);
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl FakeKube {
    /// Starts the server on `127.0.0.1:0` on the current tokio runtime.
    pub async fn start() -> FakeKube {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tls::generate();
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!(
            "https://127.0.0.1:{}",
            tcp.local_addr().expect("address").port()
        );
        let (shutdown, shutdown_rx) = channel::channel(false);
        let (refuse, refuse_rx) = channel::channel(false);
        let state = Arc::new(ServerState {
            admin_token: hex(&rand::random::<[u8; 24]>()),
            store: Store::new(HISTORY),
            events: Default::default(),
            keys: KeyRing::new(SigningKey::generate()),
            revoked: Default::default(),
            faults: Default::default(),
            counters: Default::default(),
            shutdown: shutdown_rx.clone(),
            watch_drops: channel::channel(0).0,
            pcr_faults: Default::default(),
        });
        let (listener, acceptor) = tls::TlsListener::spawn(tcp, tls.config, shutdown_rx, refuse_rx);
        let app = server::router(state.clone());
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let handle = Handle {
            state,
            url,
            ca_pem: tls.ca_pem,
            ca_der: tls.ca_der,
            foreign_key: SigningKey::generate(),
            shutdown,
            refuse,
            tasks: Mutex::new(vec![acceptor, serve]),
        };
        FakeKube {
            inner: Arc::new(handle),
        }
    }

    /// Stops accepting, ends every watch and cuts every open connection.
    pub fn shutdown(&self) {
        self.inner.stop();
    }

    fn state(&self) -> &ServerState {
        &self.inner.state
    }

    // ----- client configuration -----

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// The bearer token every request must carry.
    pub fn admin_token(&self) -> String {
        self.state().admin_token.clone()
    }

    /// The kubeconfig text (CA data, server URL, bearer token; context namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::yaml(
            &self.inner.url,
            &self.inner.ca_pem,
            &self.state().admin_token,
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig_yaml()).expect("write kubeconfig");
    }

    /// The kubeconfig's settings as a `kube::Config`.
    pub fn kube_config(&self) -> kube::Config {
        kubeconfig::config(
            &self.inner.url,
            &self.inner.ca_der,
            &self.state().admin_token,
        )
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("kube client for the fake")
    }

    // ----- objects -----

    /// Creates or replaces a Secret (new resourceVersion every time, watchers notified).
    /// Returns the new resourceVersion.
    pub fn put_secret(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        data: BTreeMap<String, Vec<u8>>,
    ) -> String {
        let object = self
            .state()
            .store
            .put(Kind::Secret, ns, name, |previous, rv| {
                resources::secret((ns, name), type_, &data, previous, rv)
            });
        resource_version(&object)
    }

    /// Sets (`Some`) or removes (`None`) an annotation on a Secret, as `kubectl annotate`
    /// does (new resourceVersion, watchers notified). Panics if there is no such Secret.
    pub fn annotate_secret(&self, ns: &str, name: &str, key: &str, value: Option<&str>) {
        let updated = self
            .state()
            .store
            .update(Kind::Secret, ns, name, |cur, rv| {
                let mut o = cur.clone();
                match value {
                    Some(v) => o["metadata"]["annotations"][key] = v.into(),
                    None => {
                        if let Some(a) = o["metadata"]["annotations"].as_object_mut() {
                            a.remove(key);
                        }
                    }
                }
                o["metadata"]["resourceVersion"] = rv.to_string().into();
                Ok::<_, ()>(o)
            });
        assert!(matches!(updated, Ok(Some(_))), "no Secret {ns}/{name}");
    }

    /// Deletes a Secret; false if there was none.
    pub fn delete_secret(&self, ns: &str, name: &str) -> bool {
        self.state().store.delete(Kind::Secret, ns, name).is_some()
    }

    /// Creates or replaces a ConfigMap. Returns the new resourceVersion.
    pub fn put_configmap(&self, ns: &str, name: &str, data: BTreeMap<String, String>) -> String {
        let object = self
            .state()
            .store
            .put(Kind::ConfigMap, ns, name, |previous, rv| {
                resources::config_map((ns, name), &data, previous, rv)
            });
        resource_version(&object)
    }

    pub fn delete_configmap(&self, ns: &str, name: &str) -> bool {
        self.state()
            .store
            .delete(Kind::ConfigMap, ns, name)
            .is_some()
    }

    /// Creates or replaces a running Pod of `sa` on `node`; its uid is the one a token
    /// bound to it (`TokenSpec::pod`) carries. ServiceAccount `ns/sa` and Node `node` are
    /// created too unless they exist. Returns the new resourceVersion.
    pub fn put_pod(&self, ns: &str, name: &str, sa: &str, node: &str) -> String {
        self.ensure_pod_owners(ns, sa, node);
        let object = self.state().store.put(Kind::Pod, ns, name, |_, rv| {
            resources::pod((ns, name), sa, node, rv)
        });
        resource_version(&object)
    }

    /// [`Self::put_pod`] with `edit` applied to the object first (containers, env, status).
    pub fn put_pod_with(
        &self,
        ns: &str,
        name: &str,
        sa: &str,
        node: &str,
        edit: impl FnOnce(&mut Value),
    ) -> String {
        self.ensure_pod_owners(ns, sa, node);
        let object = self.state().store.put(Kind::Pod, ns, name, |_, rv| {
            let mut pod = resources::pod((ns, name), sa, node, rv);
            edit(&mut pod);
            pod
        });
        resource_version(&object)
    }

    pub fn delete_pod(&self, ns: &str, name: &str) -> bool {
        self.state().store.delete(Kind::Pod, ns, name).is_some()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state().store.current_rv()
    }

    /// Forgets the change history: a watch from any resourceVersion before now gets 410.
    pub fn compact_history(&self) {
        self.state().store.compact();
    }

    /// Every Event (core/v1 and events.k8s.io/v1) in creation order, as last patched.
    pub fn events(&self) -> Vec<Value> {
        self.state().events.all()
    }

    // ----- observation -----

    pub fn request_count(&self, kind: RequestKind) -> u64 {
        self.state().counters.count(kind)
    }

    /// Every request line (`METHOD /path?query`) in arrival order, 401s included.
    pub fn requests(&self) -> Vec<String> {
        self.state().counters.log()
    }

    /// The most TokenReviews ever processed at once (latency included, faults too).
    pub fn token_review_max_in_flight(&self) -> u64 {
        self.state().counters.max_reviews_in_flight()
    }

    /// Waits up to `timeout` until `request_count(kind) >= at_least`; false on timeout.
    pub async fn wait_for_requests(
        &self,
        kind: RequestKind,
        at_least: u64,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.request_count(kind) < at_least {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
