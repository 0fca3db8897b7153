//! What to do with an undecided request, before any signing: the checks against the pod
//! watch and the request's own fields. Pure; the signer loop does the waiting and writing.

use std::time::Duration;

use certmint_core::identity::ServiceAccount;

use super::lifetime;
use super::request::Request;
use crate::pods::PodIndex;

/// Why a request is refused: the condition's reason (CamelCase) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The verdict on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sign for this service account, asking for this notAfter − notBefore.
    Sign {
        account: ServiceAccount,
        span: Duration,
    },
    /// The `Denied` condition.
    Deny(Refusal),
    /// Not decidable yet: the pod watch has not shown the pod (or has not listed yet).
    Wait,
}

/// The pods as the watch shows them.
pub trait Pods {
    fn synced(&self) -> bool;
    /// (name, namespace/service account, node) of the pod with `uid`.
    fn by_uid(&self, uid: &str) -> Option<crate::pods::Placed>;
    fn uid_of(&self, namespace: &str, name: &str) -> Option<String>;
}

impl Pods for PodIndex {
    fn synced(&self) -> bool {
        certmint_core::impersonation::PodDirectory::synced(self)
    }
    fn by_uid(&self, uid: &str) -> Option<crate::pods::Placed> {
        PodIndex::by_uid(self, uid)
    }
    fn uid_of(&self, namespace: &str, name: &str) -> Option<String> {
        PodIndex::uid_of(self, namespace, name)
    }
}

/// A request without `stubPKCS10Request` carries its key as `pkixPublicKey` (the
/// `v1beta1` of Kubernetes 1.35); certmint signs only keys sent as a stub CSR.
const NO_STUB: &str = "certmint signs only keys sent as spec.stubPKCS10Request (Kubernetes 1.36 and later); this request has none (the pkixPublicKey form of Kubernetes 1.35): upgrade the cluster";

/// Judges `req`. `waited_out` is true once the request has waited `pod_wait` for the pod:
/// a pod still missing is then denied instead of waited for.
pub fn judge(req: &Request, pods: &dyn Pods, configured: Duration, waited_out: bool) -> Verdict {
    if req.stub_csr.is_empty() {
        return Verdict::Deny(Refusal::new("StubCSRRequired", NO_STUB));
    }
    if let Some(key) = req.annotations.keys().next() {
        return Verdict::Deny(Refusal::new(
            "UnsupportedUserAnnotation",
            format!(
                "certmint recognises no unverifiedUserAnnotations; remove {:?}",
                bounded(key)
            ),
        ));
    }
    let span = match lifetime::span(req.max_expiration_seconds, configured) {
        Ok(span) => span,
        Err(why) => return Verdict::Deny(Refusal::new("InvalidRequest", why)),
    };
    let Ok(account) = ServiceAccount::new(&req.namespace, &req.service_account) else {
        return Verdict::Deny(Refusal::new(
            "InvalidRequest",
            "namespace or service account is not a DNS-1123 label",
        ));
    };
    if !pods.synced() {
        return Verdict::Wait;
    }
    let Some(pod) = pods.by_uid(&req.pod_uid) else {
        return missing(req, pods, waited_out);
    };
    if pod.name != req.pod_name || pod.account.namespace() != req.namespace {
        return Verdict::Deny(Refusal::new(
            "PodMismatch",
            format!(
                "pod UID {} belongs to pod {}/{}, not {}/{}",
                req.pod_uid,
                pod.account.namespace(),
                pod.name,
                req.namespace,
                req.pod_name
            ),
        ));
    }
    if pod.node != req.node_name {
        return Verdict::Deny(Refusal::new(
            "PodMismatch",
            format!(
                "pod {} runs on node {}, not {}",
                req.pod_name, pod.node, req.node_name
            ),
        ));
    }
    if pod.account != account {
        return Verdict::Deny(Refusal::new(
            "PodMismatch",
            format!(
                "pod {} runs as service account {}, not {}",
                req.pod_name,
                pod.account.name(),
                req.service_account
            ),
        ));
    }
    Verdict::Sign { account, span }
}

/// The pod with the request's UID is not in the watch: wait for it, then deny.
fn missing(req: &Request, pods: &dyn Pods, waited_out: bool) -> Verdict {
    if !waited_out {
        return Verdict::Wait;
    }
    match pods.uid_of(&req.namespace, &req.pod_name) {
        Some(uid) => Verdict::Deny(Refusal::new(
            "PodUIDMismatch",
            format!(
                "pod {}/{} has UID {uid}, not {}",
                req.namespace, req.pod_name, req.pod_uid
            ),
        )),
        None => Verdict::Deny(Refusal::new(
            "PodNotFound",
            format!(
                "no running pod {}/{} with UID {}",
                req.namespace, req.pod_name, req.pod_uid
            ),
        )),
    }
}

/// At most 100 bytes of an untrusted string, for messages.
fn bounded(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> PodIndex {
        let pod = serde_json::from_value(json!({
            "metadata": {"uid": "u1", "name": "web-1", "namespace": "shop"},
            "spec": {"containers": [], "serviceAccountName": "web", "nodeName": "n1"},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        let idx = PodIndex::default();
        idx.replace(&[pod]);
        idx
    }

    fn req() -> Request {
        Request {
            namespace: "shop".into(),
            name: "req-1".into(),
            uid: "r1".into(),
            signer_name: "certmint.io/spiffe".into(),
            pod_name: "web-1".into(),
            pod_uid: "u1".into(),
            service_account: "web".into(),
            service_account_uid: "sa-u".into(),
            node_name: "n1".into(),
            node_uid: "n-u".into(),
            max_expiration_seconds: None,
            stub_csr: vec![0x30],
            annotations: Default::default(),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn reason(v: Verdict) -> &'static str {
        match v {
            Verdict::Deny(r) => r.reason,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn signs_for_the_pods_service_account() {
        let v = judge(&req(), &index(), DAY, false);
        let Verdict::Sign { account, span } = v else {
            panic!("{v:?}")
        };
        assert_eq!((account.namespace(), account.name()), ("shop", "web"));
        assert_eq!(span, DAY);
    }

    #[test]
    fn denies_mismatches_at_once_and_missing_pods_after_the_wait() {
        let idx = index();
        let other_node = Request {
            node_name: "n2".into(),
            ..req()
        };
        assert_eq!(reason(judge(&other_node, &idx, DAY, false)), "PodMismatch");
        let other_sa = Request {
            service_account: "db".into(),
            ..req()
        };
        assert_eq!(reason(judge(&other_sa, &idx, DAY, false)), "PodMismatch");
        let new_uid = Request {
            pod_uid: "u9".into(),
            ..req()
        };
        assert_eq!(judge(&new_uid, &idx, DAY, false), Verdict::Wait);
        assert_eq!(reason(judge(&new_uid, &idx, DAY, true)), "PodUIDMismatch");
        let gone = Request {
            pod_name: "web-9".into(),
            pod_uid: "u9".into(),
            ..req()
        };
        assert_eq!(reason(judge(&gone, &idx, DAY, true)), "PodNotFound");
        // Before the pod list is loaded nothing is judged against it.
        assert_eq!(
            judge(&req(), &PodIndex::default(), DAY, true),
            Verdict::Wait
        );
    }

    #[test]
    fn denies_a_request_without_a_stub_csr() {
        let pkix_only = Request {
            stub_csr: Vec::new(),
            ..req()
        };
        assert_eq!(
            reason(judge(&pkix_only, &index(), DAY, false)),
            "StubCSRRequired"
        );
    }

    #[test]
    fn denies_unknown_annotations_and_bad_lifetimes() {
        let mut annotated = req();
        annotated
            .annotations
            .insert("example.com/flavour".into(), "x".into());
        assert_eq!(
            reason(judge(&annotated, &index(), DAY, false)),
            "UnsupportedUserAnnotation"
        );
        let short = Request {
            max_expiration_seconds: Some(60),
            ..req()
        };
        assert_eq!(
            reason(judge(&short, &index(), DAY, false)),
            "InvalidRequest"
        );
    }
}
