//! Request counters by kind, the TokenReview in-flight high-water mark, and a log of every
//! request line, so tests can assert which calls were made.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use axum::http::Method;

/// What a request was, as classified from its method, path and query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    TokenReview,
    SelfSubjectAccessReview,
    SecretGet,
    SecretList,
    SecretWatch,
    ConfigMapGet,
    ConfigMapList,
    ConfigMapWatch,
    /// GET of one ServiceAccount.
    ServiceAccountGet,
    /// GET of one Node.
    NodeGet,
    /// POST of a core/v1 or events.k8s.io/v1 Event.
    EventCreate,
    /// PATCH of an Event (kube's `Recorder` patches repeats into a series).
    EventPatch,
    /// GET (single or list) of Events.
    EventRead,
    /// GET of `/.well-known/openid-configuration`.
    Discovery,
    /// GET of `/openid/v1/jwks`.
    Jwks,
    /// PUT of a PodCertificateRequest's status.
    PodCertificateStatusWrite,
    /// POST or PUT of a ClusterTrustBundle.
    ClusterTrustBundleWrite,
    /// Rejected for a missing or wrong bearer token (counted instead of its own kind).
    Unauthorized,
    /// Anything else (unknown paths, unsupported methods, discovery).
    Other,
}

const KINDS: usize = RequestKind::Other as usize + 1;

impl RequestKind {
    /// Classifies a request the way the router will dispatch it.
    pub(crate) fn classify(method: &Method, path: &str, query: &str) -> RequestKind {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let watch = query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1");
        let resource = match segments.as_slice() {
            [".well-known", "openid-configuration"] => return RequestKind::Discovery,
            ["openid", "v1", "jwks"] => return RequestKind::Jwks,
            ["apis", "authentication.k8s.io", "v1", "tokenreviews"] if method == Method::POST => {
                return RequestKind::TokenReview;
            }
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ] if method == Method::POST => {
                return RequestKind::SelfSubjectAccessReview;
            }
            [
                "apis",
                "certificates.k8s.io",
                "v1" | "v1beta1",
                "namespaces",
                _,
                "podcertificaterequests",
                _,
                "status",
            ] if method == Method::PUT => return RequestKind::PodCertificateStatusWrite,
            [
                "apis",
                "certificates.k8s.io",
                "v1" | "v1beta1",
                "clustertrustbundles",
                ..,
            ] if method == Method::POST || method == Method::PUT => {
                return RequestKind::ClusterTrustBundleWrite;
            }
            ["api", "v1", "namespaces", _, resource] | ["api", "v1", resource] => {
                (*resource, false)
            }
            ["api", "v1", "namespaces", _, resource, _] => (*resource, true),
            ["api", "v1", resource, _] if *resource != "namespaces" => (*resource, true),
            ["apis", "events.k8s.io", "v1", "namespaces", _, "events"] => ("events", false),
            ["apis", "events.k8s.io", "v1", "namespaces", _, "events", _] => ("events", true),
            _ => return RequestKind::Other,
        };
        Self::for_resource(method, resource, watch)
    }

    fn for_resource(method: &Method, (resource, named): (&str, bool), watch: bool) -> RequestKind {
        use RequestKind::*;
        let get = method == Method::GET;
        match (resource, named, get, watch) {
            ("secrets", true, true, _) => SecretGet,
            ("secrets", false, true, true) => SecretWatch,
            ("secrets", false, true, false) => SecretList,
            ("configmaps", true, true, _) => ConfigMapGet,
            ("configmaps", false, true, true) => ConfigMapWatch,
            ("configmaps", false, true, false) => ConfigMapList,
            ("serviceaccounts", true, true, _) => ServiceAccountGet,
            ("nodes", true, true, _) => NodeGet,
            ("events", false, false, _) if method == Method::POST => EventCreate,
            ("events", true, false, _) if method == Method::PATCH => EventPatch,
            ("events", _, true, _) => EventRead,
            _ => Other,
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    by_kind: [AtomicU64; KINDS],
    reviews_in_flight: AtomicU64,
    reviews_max_in_flight: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl Counters {
    pub(crate) fn record(&self, kind: RequestKind, line: String) {
        self.by_kind[kind as usize].fetch_add(1, Ordering::SeqCst);
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    pub(crate) fn count(&self, kind: RequestKind) -> u64 {
        self.by_kind[kind as usize].load(Ordering::SeqCst)
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn max_reviews_in_flight(&self) -> u64 {
        self.reviews_max_in_flight.load(Ordering::SeqCst)
    }

    /// Marks one TokenReview as being processed until the guard is dropped.
    pub(crate) fn review_started(&self) -> InFlight<'_> {
        let now = self.reviews_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.reviews_max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&self.reviews_in_flight)
    }
}

pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
