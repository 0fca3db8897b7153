//! The pods of the cluster, as a cluster-wide watch sees them: which service accounts have
//! a running pod on which node. Istio impersonation checks ask it; it never asks the API
//! server per call. Only the few fields it needs are kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;

use certmint_core::authn::PodRef;
use certmint_core::identity::ServiceAccount;
use certmint_core::impersonation::PodDirectory;

use crate::trust::TrustIndex;

/// What is kept of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    /// Its namespace and service account.
    pub account: ServiceAccount,
    pub node: String,
}

#[derive(Default)]
struct Index {
    by_uid: HashMap<String, Placed>,
    /// (namespace, name) → uid of the pod indexed under that name.
    by_name: HashMap<(String, String), String>,
    on_node: HashMap<(String, ServiceAccount), usize>,
}

impl Index {
    fn insert(&mut self, uid: String, p: Placed) {
        self.remove(&uid);
        *self
            .on_node
            .entry((p.node.clone(), p.account.clone()))
            .or_default() += 1;
        let name = (p.account.namespace().to_owned(), p.name.clone());
        self.by_name.insert(name, uid.clone());
        self.by_uid.insert(uid, p);
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        let name = (old.account.namespace().to_owned(), old.name.clone());
        if self.by_name.get(&name).is_some_and(|u| u == uid) {
            self.by_name.remove(&name);
        }
        let key = (old.node, old.account);
        if let Some(n) = self.on_node.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.on_node.remove(&key);
            }
        }
    }
}

/// The pod index, filled by [`PodIndex::run`].
#[derive(Default)]
pub struct PodIndex {
    index: RwLock<Index>,
    synced: AtomicBool,
    /// Also told every pod: what it trusts (the rotation interlock, issue 21).
    trust: Option<Arc<TrustIndex>>,
}

impl PodIndex {
    /// An index whose watch also feeds `trust`.
    pub fn with_trust(trust: Option<Arc<TrustIndex>>) -> Self {
        Self {
            trust,
            ..Self::default()
        }
    }

    /// Applies one pod as the API server reports it: indexed while it is scheduled and not
    /// finished; otherwise (or when its fields are not sane) forgotten.
    pub fn apply(&self, pod: &Pod) {
        if let Some(t) = &self.trust {
            t.apply(pod);
        }
        let Some(uid) = pod.metadata.uid.clone().filter(|u| sane(u)) else {
            return;
        };
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match placed(pod) {
            Some(p) => index.insert(uid, p),
            None => index.remove(&uid),
        }
    }

    /// Forgets a deleted pod.
    pub fn delete(&self, pod: &Pod) {
        if let Some(t) = &self.trust {
            t.delete(pod);
        }
        if let Some(uid) = &pod.metadata.uid {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.remove(uid);
        }
    }

    /// Replaces everything with a complete list (the watch's initial list, or a re-list).
    pub fn replace(&self, pods: &[Pod]) {
        if let Some(t) = &self.trust {
            t.replace(pods);
        }
        let mut fresh = Index::default();
        for pod in pods {
            if let (Some(uid), Some(p)) =
                (pod.metadata.uid.clone().filter(|u| sane(u)), placed(pod))
            {
                fresh.insert(uid, p);
            }
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.synced.store(true, Ordering::Release);
    }

    /// The indexed pod with `uid` (scheduled and not finished).
    pub fn by_uid(&self, uid: &str) -> Option<Placed> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.by_uid.get(uid).cloned()
    }

    /// The uid of the indexed pod named `name` in `namespace`.
    pub fn uid_of(&self, namespace: &str, name: &str) -> Option<String> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index
            .by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Watches every pod in the cluster until shutdown; survives errors and re-lists.
    pub async fn run(self: Arc<Self>, client: Client, mut shutdown: watch::Receiver<bool>) {
        let api = Api::<Pod>::all(client);
        let mut pending: Vec<Pod> = Vec::new();
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        tokio::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => return,
                e = stream.next() => e,
            };
            match event {
                None => return,
                Some(Ok(Event::Init)) => pending.clear(),
                Some(Ok(Event::InitApply(p))) => pending.push(p),
                Some(Ok(Event::InitDone)) => {
                    self.replace(&pending);
                    tracing::info!(pods = pending.len(), "pod list loaded");
                    pending = Vec::new();
                }
                Some(Ok(Event::Apply(p))) => self.apply(&p),
                Some(Ok(Event::Delete(p))) => self.delete(&p),
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    }
}

impl PodDirectory for PodIndex {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn node_of(&self, pod: &PodRef, account: &ServiceAccount) -> Option<String> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let p = index.by_uid.get(&pod.uid)?;
        (p.name == pod.name && p.account == *account).then(|| p.node.clone())
    }

    fn runs_on(&self, node: &str, account: &ServiceAccount) -> bool {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index
            .on_node
            .contains_key(&(node.to_owned(), account.clone()))
    }
}

/// The pod's place, when it is scheduled, not finished and its names are sane.
fn placed(pod: &Pod) -> Option<Placed> {
    let spec = pod.spec.as_ref()?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let node = spec.node_name.clone().filter(|n| sane(n))?;
    let name = pod.metadata.name.clone().filter(|n| sane(n))?;
    let ns = pod.metadata.namespace.as_deref()?;
    let sa = spec.service_account_name.as_deref().unwrap_or("default");
    let account = ServiceAccount::new(ns, sa).ok()?;
    Some(Placed {
        name,
        account,
        node,
    })
}

/// Non-empty and no longer than a DNS subdomain: anything else from the API server is
/// ignored rather than kept.
fn sane(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, name: &str, sa: &str, node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"uid": uid, "name": name, "namespace": "shop"},
            "spec": {"containers": [], "serviceAccountName": sa, "nodeName": node},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn indexes_running_pods_by_node_and_forgets_finished_ones() {
        let web = ServiceAccount::new("shop", "web").unwrap();
        let idx = PodIndex::default();
        assert!(!idx.synced());
        idx.replace(&[pod("u1", "web-1", "web", Some("n1"), "Running")]);
        assert!(idx.synced());
        assert!(idx.runs_on("n1", &web));
        assert!(!idx.runs_on("n2", &web));
        // A second pod on n1, then the first moves to Succeeded: n1 still has one.
        idx.apply(&pod("u2", "web-2", "web", Some("n1"), "Running"));
        idx.apply(&pod("u1", "web-1", "web", Some("n1"), "Succeeded"));
        assert!(idx.runs_on("n1", &web));
        idx.delete(&pod("u2", "web-2", "web", Some("n1"), "Running"));
        assert!(!idx.runs_on("n1", &web));
        // Unscheduled pods are not on any node.
        idx.apply(&pod("u3", "web-3", "web", None, "Pending"));
        assert!(!idx.runs_on("", &web));
    }

    #[test]
    fn node_of_matches_uid_name_and_account() {
        let web = ServiceAccount::new("shop", "web").unwrap();
        let idx = PodIndex::default();
        idx.replace(&[pod("u1", "web-1", "web", Some("n1"), "Running")]);
        let bound = PodRef::new(Some("web-1"), Some("u1")).unwrap();
        assert_eq!(idx.node_of(&bound, &web), Some("n1".into()));
        let reused_name = PodRef::new(Some("web-1"), Some("u-other")).unwrap();
        assert_eq!(idx.node_of(&reused_name, &web), None);
        let other_sa = ServiceAccount::new("shop", "db").unwrap();
        assert_eq!(idx.node_of(&bound, &other_sa), None);
    }

    #[test]
    fn finds_pods_by_uid_and_by_name() {
        let idx = PodIndex::default();
        idx.replace(&[pod("u1", "web-1", "web", Some("n1"), "Running")]);
        assert_eq!(idx.by_uid("u1").unwrap().node, "n1");
        assert_eq!(idx.uid_of("shop", "web-1").as_deref(), Some("u1"));
        // The name is reused by a new pod; the old one's removal keeps the new entry.
        idx.apply(&pod("u2", "web-1", "web", Some("n2"), "Running"));
        idx.delete(&pod("u1", "web-1", "web", Some("n1"), "Running"));
        assert_eq!(idx.uid_of("shop", "web-1").as_deref(), Some("u2"));
        assert!(idx.by_uid("u1").is_none());
    }
}
