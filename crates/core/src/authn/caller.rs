//! What an authenticator proved about a caller: the service account, how it was proven,
//! and the pod the token was bound to when the token says so. The audit trail records it.

use crate::identity::ServiceAccount;

/// Longest pod name or uid kept from a token or a review (a DNS subdomain is ≤ 253 bytes).
const MAX_POD_FIELD: usize = 253;

/// How a token was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// The API server's TokenReview answered.
    TokenReview,
    /// Verified locally against the API server's published keys.
    Local,
    /// Verified locally because no TokenReview answer could be had.
    LocalFallback,
    /// Verified with configured JWT keys (`authn.mode: jwt`).
    Jwt,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TokenReview => "tokenreview",
            Method::Local => "local",
            Method::LocalFallback => "local_fallback",
            Method::Jwt => "jwt",
        }
    }
}

/// The pod a token is bound to (projected tokens and TokenReview's `extra` carry it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

impl PodRef {
    /// Both parts present, non-empty and of sane length; otherwise no pod is recorded.
    pub fn new(name: Option<&str>, uid: Option<&str>) -> Option<Self> {
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_POD_FIELD;
        match (name, uid) {
            (Some(n), Some(u)) if ok(n) && ok(u) => Some(Self {
                name: n.to_owned(),
                uid: u.to_owned(),
            }),
            _ => None,
        }
    }
}

/// A caller whose token authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authenticated {
    pub account: ServiceAccount,
    pub method: Method,
    pub pod: Option<PodRef>,
    /// The node the token says its pod runs on (the `kubernetes.io.node` claim, or
    /// TokenReview's `authentication.kubernetes.io/node-name`).
    pub node: Option<String>,
    /// An earlier answer reused from the token cache (`method` says how it was proven).
    pub cached: bool,
}

impl Authenticated {
    pub fn new(account: ServiceAccount, method: Method, pod: Option<PodRef>) -> Self {
        Self {
            account,
            method,
            pod,
            node: None,
            cached: false,
        }
    }

    /// The same caller, with the node its token names (ignored when empty or too long).
    pub fn with_node(mut self, node: Option<&str>) -> Self {
        self.node = node
            .filter(|n| !n.is_empty() && n.len() <= MAX_POD_FIELD)
            .map(str::to_owned);
        self
    }

    /// The same caller, proven another way (e.g. locally when TokenReview failed).
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// The same caller, answered from the token cache: how it was proven stays as it was.
    pub fn from_cache(mut self) -> Self {
        self.cached = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_needs_both_parts_and_a_sane_length() {
        assert!(PodRef::new(Some("web-0"), Some("u-2")).is_some());
        assert!(PodRef::new(Some("web-0"), None).is_none());
        assert!(PodRef::new(Some(""), Some("u-2")).is_none());
        assert!(PodRef::new(Some(&"x".repeat(254)), Some("u")).is_none());
    }
}
