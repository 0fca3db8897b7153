//! ServiceAccounts and Nodes: the objects a pod names. `put_pod` makes sure both exist,
//! with the stable UIDs that PodCertificateRequests created by the fake carry; tests
//! recreate them (a new UID) or delete them to make a request stale.

use serde_json::{Value, json};

use super::{
    FakeKube,
    resources::timestamp_now,
    store::Kind,
    tokens::{random_uid, stable_uid},
};

/// The UID `put_pod` gives ServiceAccount `ns/name`.
pub(crate) fn account_uid(ns: &str, name: &str) -> String {
    stable_uid(&["sa", ns, name])
}

/// The UID `put_pod` gives Node `name`.
pub(crate) fn node_uid(name: &str) -> String {
    stable_uid(&["node", name])
}

fn object(kind: Kind, (ns, name): (&str, &str), uid: &str, rv: u64) -> Value {
    let mut metadata = json!({
        "name": name,
        "uid": uid,
        "creationTimestamp": timestamp_now(),
        "resourceVersion": rv.to_string(),
    });
    if !kind.cluster_scoped() {
        metadata["namespace"] = json!(ns);
    }
    json!({ "kind": kind.name(), "apiVersion": "v1", "metadata": metadata })
}

impl FakeKube {
    /// Creates `kind` `ns/name` with `uid` unless it exists (then it is left alone).
    fn ensure(&self, kind: Kind, ns: &str, name: &str, uid: &str) {
        let _ = self
            .state()
            .store
            .create(kind, ns, name, |rv| object(kind, (ns, name), uid, rv));
    }

    /// Deletes and creates the object again with a new random UID; returns the UID.
    fn recreate(&self, kind: Kind, ns: &str, name: &str) -> String {
        let store = &self.state().store;
        store.delete(kind, ns, name);
        let uid = random_uid();
        store
            .create(kind, ns, name, |rv| object(kind, (ns, name), &uid, rv))
            .expect("the object was just deleted");
        uid
    }

    /// Makes sure ServiceAccount `ns/sa` and Node `node` exist (with their stable UIDs).
    pub(crate) fn ensure_pod_owners(&self, ns: &str, sa: &str, node: &str) {
        self.ensure(Kind::ServiceAccount, ns, sa, &account_uid(ns, sa));
        self.ensure(Kind::Node, "", node, &node_uid(node));
    }

    /// Replaces ServiceAccount `ns/name` by a new one with a new UID, which it returns.
    pub fn recreate_service_account(&self, ns: &str, name: &str) -> String {
        self.recreate(Kind::ServiceAccount, ns, name)
    }

    /// Deletes ServiceAccount `ns/name`; false if there was none.
    pub fn delete_service_account(&self, ns: &str, name: &str) -> bool {
        self.state()
            .store
            .delete(Kind::ServiceAccount, ns, name)
            .is_some()
    }

    /// Replaces Node `name` by a new one with a new UID, which it returns.
    pub fn recreate_node(&self, name: &str) -> String {
        self.recreate(Kind::Node, "", name)
    }

    /// Deletes Node `name`; false if there was none.
    pub fn delete_node(&self, name: &str) -> bool {
        self.state().store.delete(Kind::Node, "", name).is_some()
    }

    /// The UID of ServiceAccount `ns/name` as stored now.
    pub fn service_account_uid(&self, ns: &str, name: &str) -> Option<String> {
        self.uid_of(Kind::ServiceAccount, ns, name)
    }

    /// The UID of Node `name` as stored now.
    pub fn node_uid(&self, name: &str) -> Option<String> {
        self.uid_of(Kind::Node, "", name)
    }

    fn uid_of(&self, kind: Kind, ns: &str, name: &str) -> Option<String> {
        let object = self.state().store.get(kind, ns, name)?;
        object["metadata"]["uid"].as_str().map(str::to_owned)
    }
}
