//! The object store: Secrets, ConfigMaps, Pods, ServiceAccounts, Nodes and certificate
//! objects as JSON, one global resourceVersion counter (as etcd's revision), a bounded
//! history of changes for watches to resume from, and a broadcast of new changes. The
//! history and the broadcast are updated under one lock, so a watch that replays history
//! and then follows the broadcast sees every change exactly once.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use serde_json::Value;
use tokio::sync::broadcast;

/// The watchable kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Secret,
    ConfigMap,
    Pod,
    ServiceAccount,
    /// Cluster-scoped: stored under the namespace "".
    Node,
    PodCertificateRequest,
    /// Cluster-scoped: stored under the namespace "".
    ClusterTrustBundle,
}

impl Kind {
    /// The plural resource name used in paths and NotFound messages.
    pub(crate) fn resource(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
            Kind::Pod => "pods",
            Kind::ServiceAccount => "serviceaccounts",
            Kind::Node => "nodes",
            Kind::PodCertificateRequest => "podcertificaterequests",
            Kind::ClusterTrustBundle => "clustertrustbundles",
        }
    }

    /// The apiVersion of the kind's objects and lists.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Kind::PodCertificateRequest | Kind::ClusterTrustBundle => "certificates.k8s.io/v1",
            _ => "v1",
        }
    }

    /// Whether objects of the kind live outside namespaces (stored under "").
    pub(crate) fn cluster_scoped(self) -> bool {
        matches!(self, Kind::Node | Kind::ClusterTrustBundle)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::Pod => "Pod",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Node => "Node",
            Kind::PodCertificateRequest => "PodCertificateRequest",
            Kind::ClusterTrustBundle => "ClusterTrustBundle",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change, at resourceVersion `rv`.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub change: ChangeType,
    pub object: Value,
}

/// Asked to resume from a resourceVersion the history no longer covers.
#[derive(Debug)]
pub(crate) struct Gone {
    pub requested: u64,
    pub oldest: u64,
}

type Key = (Kind, String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// Every change with rv <= `compacted` is gone from the history.
    compacted: u64,
}

pub(crate) struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    history_limit: usize,
}

/// What a new watch starts from: changes to replay, then the live feed.
pub(crate) struct WatchStart {
    pub replay: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The resourceVersion the watch is known to be current at.
    pub rv: u64,
}

impl Store {
    pub(crate) fn new(history_limit: usize) -> Store {
        let inner = Inner {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 1,
        };
        Store {
            inner: Mutex::new(inner),
            changes: broadcast::channel(1024).0,
            history_limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next resourceVersion (for objects kept outside the store, like Events).
    pub(crate) fn next_rv(&self) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.rv
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Creates or replaces an object. `build` gets the previous object (if any) and the new
    /// resourceVersion, and returns the complete new object.
    pub(crate) fn put(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        build: impl FnOnce(Option<&Value>, u64) -> Value,
    ) -> Value {
        let mut inner = self.lock();
        inner.rv += 1;
        let key = (kind, ns.to_string(), name.to_string());
        let object = build(inner.objects.get(&key), inner.rv);
        let change = match inner.objects.insert(key, object.clone()) {
            Some(_) => ChangeType::Modified,
            None => ChangeType::Added,
        };
        self.commit(&mut inner, kind, change, object.clone());
        object
    }

    /// Creates an object that must not exist yet (Err: it does). `build` gets the new
    /// resourceVersion.
    pub(crate) fn create(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        build: impl FnOnce(u64) -> Value,
    ) -> Result<Value, ()> {
        let mut inner = self.lock();
        let key = (kind, ns.to_string(), name.to_string());
        if inner.objects.contains_key(&key) {
            return Err(());
        }
        inner.rv += 1;
        let object = build(inner.rv);
        inner.objects.insert(key, object.clone());
        self.commit(&mut inner, kind, ChangeType::Added, object.clone());
        Ok(object)
    }

    /// Replaces an existing object if `build` accepts it: `build` sees the current object
    /// and the would-be resourceVersion, under the store's lock (so a resourceVersion
    /// check in it is atomic with the write). Ok(None): there is no such object.
    pub(crate) fn update<E>(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        build: impl FnOnce(&Value, u64) -> Result<Value, E>,
    ) -> Result<Option<Value>, E> {
        let mut inner = self.lock();
        let key = (kind, ns.to_string(), name.to_string());
        let Some(current) = inner.objects.get(&key) else {
            return Ok(None);
        };
        let object = build(current, inner.rv + 1)?;
        inner.rv += 1;
        inner.objects.insert(key, object.clone());
        self.commit(&mut inner, kind, ChangeType::Modified, object.clone());
        Ok(Some(object))
    }

    /// Deletes an object; the DELETED event carries it with a new resourceVersion.
    pub(crate) fn delete(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut inner = self.lock();
        let mut object = inner
            .objects
            .remove(&(kind, ns.to_string(), name.to_string()))?;
        inner.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(inner.rv.to_string());
        self.commit(&mut inner, kind, ChangeType::Deleted, object.clone());
        Some(object)
    }

    fn commit(&self, inner: &mut Inner, kind: Kind, change: ChangeType, object: Value) {
        let rv = inner.rv;
        let change = Arc::new(Change {
            rv,
            kind,
            change,
            object,
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_limit {
            if let Some(dropped) = inner.history.pop_front() {
                inner.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Forgets the whole history: watches from any older resourceVersion get 410 Gone.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    pub(crate) fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let key = (kind, ns.to_string(), name.to_string());
        self.lock().objects.get(&key).cloned()
    }

    /// All objects of `kind` (in `ns`, or everywhere) and the list's resourceVersion.
    pub(crate) fn list(&self, kind: Kind, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns == n))
            .map(|(_, object)| object.clone())
            .collect();
        (items, inner.rv)
    }

    /// Starts a watch from `from` (None: from now, replaying the current objects as ADDED).
    pub(crate) fn watch(&self, kind: Kind, from: Option<u64>) -> Result<WatchStart, Gone> {
        let inner = self.lock();
        let live = self.changes.subscribe();
        let replay = match from {
            None => inner
                .objects
                .iter()
                .filter(|((k, _, _), _)| *k == kind)
                .map(|(_, object)| Arc::new(added(kind, object, inner.rv)))
                .collect(),
            Some(rv) if rv < inner.compacted => {
                let oldest = inner.compacted + 1;
                return Err(Gone {
                    requested: rv,
                    oldest,
                });
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|c| c.rv > rv && c.kind == kind)
                .cloned()
                .collect(),
        };
        Ok(WatchStart {
            replay,
            live,
            rv: inner.rv.max(from.unwrap_or(0)),
        })
    }
}

fn added(kind: Kind, object: &Value, rv: u64) -> Change {
    Change {
        rv,
        kind,
        change: ChangeType::Added,
        object: object.clone(),
    }
}
