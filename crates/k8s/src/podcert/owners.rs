//! The request's service account and node, checked against the objects as certmint reads
//! them: `spec.serviceAccountUID` must be the UID of ServiceAccount NS/SA and
//! `spec.nodeUID` that of Node `nodeName`. A UID that matches a read of the last
//! [`FRESH_FOR`] is taken; anything else (no read yet, a different UID, no object) is
//! decided only on a read that started after the check did, so a stale read never denies.
//! Reads are metadata-only GETs shared per object (see `reads.rs`); an API error decides
//! nothing, and the request is tried again later.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::{Api, Client};
use tokio::time::Instant;

use certmint_core::logsum::{INTERVAL, Repeated};

use super::decide::Refusal;
use super::metrics::{Metrics, Owner as OwnerLabel, OwnerRead};
use super::reads::Reads;
use super::request::Request;

/// How long a read that matched is trusted without reading again.
pub const FRESH_FOR: Duration = Duration::from_secs(10);
/// Objects remembered at once (service accounts and nodes together).
const CAPACITY: usize = 16_384;
/// certmint's own deadline for one read (kube's client retries 429/503 for minutes).
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// An object a request names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Owner {
    ServiceAccount { namespace: String, name: String },
    Node(String),
}

/// What a read found: the object's UID, or no object.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Found {
    Uid(String),
    Missing,
}

impl Found {
    fn is(&self, uid: &str) -> bool {
        matches!(self, Found::Uid(u) if u == uid)
    }
}

/// The API server gave no answer (already counted and logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NoAnswer;

/// The outcome of the owner checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    Match,
    Deny(Refusal),
    /// The API server did not answer: decide nothing now.
    Unknown,
}

/// The checker, shared by the signer's tasks.
pub struct Owners {
    reader: Arc<Reader>,
    reads: Reads<Owner, Found, NoAnswer>,
}

impl Owners {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let failures = Repeated::new(
            "service-account/node reads that failed (their requests wait)",
            tracing::Level::WARN,
            INTERVAL,
        );
        failures.spawn_flusher();
        let reader = Reader {
            client,
            metrics,
            failures,
        };
        Self {
            reader: Arc::new(reader),
            reads: Reads::new(FRESH_FOR, CAPACITY),
        }
    }

    /// Checks both UIDs of `req` (the two reads run side by side).
    pub async fn check(&self, req: &Request) -> Checked {
        let since = Instant::now();
        let account = Owner::ServiceAccount {
            namespace: req.namespace.clone(),
            name: req.service_account.clone(),
        };
        let node = Owner::Node(req.node_name.clone());
        let (a, n) = futures::join!(
            self.one(account, &req.service_account_uid, since),
            self.one(node, &req.node_uid, since),
        );
        match (a, n) {
            (Checked::Deny(r), _) | (_, Checked::Deny(r)) => Checked::Deny(r),
            (Checked::Unknown, _) | (_, Checked::Unknown) => Checked::Unknown,
            _ => Checked::Match,
        }
    }

    /// A read of the last [`FRESH_FOR`] (kept or in flight) confirms a UID; a refusal
    /// needs a read that started after this check did.
    async fn one(&self, owner: Owner, want: &str, since: Instant) -> Checked {
        let recent = since.checked_sub(FRESH_FOR).unwrap_or(since);
        let read = || self.reader.clone().read(owner.clone());
        let Ok(mut seen) = self.reads.since(&owner, recent, read).await else {
            return Checked::Unknown;
        };
        if !seen.value.is(want) && seen.started < since {
            seen = match self.reads.since(&owner, since, read).await {
                Ok(seen) => seen,
                Err(NoAnswer) => return Checked::Unknown,
            };
        }
        match judge(&owner, want, &seen.value) {
            Some(refusal) => Checked::Deny(refusal),
            None => Checked::Match,
        }
    }
}

/// Makes the reads, and counts and logs each one once (however many requests share it).
struct Reader {
    client: Client,
    metrics: Arc<Metrics>,
    failures: Arc<Repeated>,
}

impl Reader {
    fn read(self: Arc<Self>, owner: Owner) -> BoxFuture<'static, Result<Found, NoAnswer>> {
        async move {
            let result = get(self.client.clone(), &owner).await;
            let object = label(&owner);
            match result {
                Ok(found) => {
                    self.metrics.owner_read(object, read_result(&found));
                    Ok(found)
                }
                Err(why) => {
                    self.metrics.owner_read(object, OwnerRead::Error);
                    let reason = format!("{} read: {why}", object.kind());
                    if self.failures.record(&reason) {
                        tracing::warn!(reason = %reason, "cannot read a {} that pod certificate requests name; they wait and are tried again", object.kind());
                    }
                    Err(NoAnswer)
                }
            }
        }
        .boxed()
    }
}

/// The refusal for a request that names `want` when the read found `found`.
fn judge(owner: &Owner, want: &str, found: &Found) -> Option<Refusal> {
    let (reason_mismatch, reason_missing, what) = match owner {
        Owner::ServiceAccount { namespace, name } => (
            "ServiceAccountUIDMismatch",
            "ServiceAccountNotFound",
            format!("service account {namespace}/{name}"),
        ),
        Owner::Node(name) => ("NodeUIDMismatch", "NodeNotFound", format!("node {name}")),
    };
    match found {
        Found::Uid(uid) if uid == want => None,
        Found::Uid(uid) => Some(Refusal::new(
            reason_mismatch,
            format!(
                "the request names {what} with UID {want}, but {what} has UID {uid} now (deleted and recreated since)"
            ),
        )),
        Found::Missing => Some(Refusal::new(
            reason_missing,
            format!("the request names {what} with UID {want}, but there is no {what}"),
        )),
    }
}

fn label(owner: &Owner) -> OwnerLabel {
    match owner {
        Owner::ServiceAccount { .. } => OwnerLabel::ServiceAccount,
        Owner::Node(_) => OwnerLabel::Node,
    }
}

fn read_result(found: &Found) -> OwnerRead {
    match found {
        Found::Uid(_) => OwnerRead::Found,
        Found::Missing => OwnerRead::NotFound,
    }
}

/// One metadata-only GET, within certmint's deadline; Err says why there is no answer.
async fn get(client: Client, owner: &Owner) -> Result<Found, String> {
    let get = async {
        let meta = match owner {
            Owner::ServiceAccount { namespace, name } => {
                Api::<ServiceAccount>::namespaced(client, namespace)
                    .get_metadata_opt(name)
                    .await?
                    .map(|m| m.metadata)
            }
            Owner::Node(name) => Api::<Node>::all(client)
                .get_metadata_opt(name)
                .await?
                .map(|m| m.metadata),
        };
        Ok::<_, kube::Error>(meta.map_or(Found::Missing, |m| Found::Uid(m.uid.unwrap_or_default())))
    };
    match tokio::time::timeout(READ_DEADLINE, get).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(describe(&e, owner)),
        Err(_) => Err(format!("no answer within {}s", READ_DEADLINE.as_secs())),
    }
}

/// A short, bounded description of a failed read (the reason of a summary line).
fn describe(e: &kube::Error, owner: &Owner) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden (HTTP 403): grant certmint get on {} (the chart does when podCertificates.enabled)",
            label(owner).resource()
        ),
        kube::Error::Api(s) => format!("API server answered {} {}", s.code, s.reason),
        _ => "the API server could not be reached".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> Owner {
        Owner::ServiceAccount {
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn a_different_uid_or_no_object_is_refused_with_the_reason_and_both_uids() {
        assert_eq!(judge(&sa(), "u1", &Found::Uid("u1".into())), None);
        let r = judge(&sa(), "u1", &Found::Uid("u2".into())).unwrap();
        assert_eq!(r.reason, "ServiceAccountUIDMismatch");
        assert!(r.message.contains("UID u1") && r.message.contains("UID u2"));
        assert!(!r.message.contains('\n'));
        let r = judge(&Owner::Node("n1".into()), "x", &Found::Missing).unwrap();
        assert_eq!(r.reason, "NodeNotFound");
        assert!(r.message.contains("node n1"));
        let r = judge(&Owner::Node("n1".into()), "x", &Found::Uid("y".into())).unwrap();
        assert_eq!(r.reason, "NodeUIDMismatch");
        assert_eq!(
            judge(&sa(), "u1", &Found::Missing).unwrap().reason,
            "ServiceAccountNotFound"
        );
    }
}
