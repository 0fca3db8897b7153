//! Workload identities: service accounts, their Linkerd names and SPIFFE IDs.

use std::fmt;

/// Why a name could not be turned into a service account.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The TokenReview username is not `system:serviceaccount:NS:SA`.
    #[error("username is not a service account")]
    NotServiceAccount,
    /// A namespace or service-account name is not a DNS-1123 label.
    #[error("{0:?} is not a DNS-1123 label")]
    BadLabel(String),
    /// The trust domain is not a DNS-1123 subdomain.
    #[error("trust domain {0:?} is not a DNS-1123 subdomain")]
    BadTrustDomain(String),
}

/// A Kubernetes service account: the identity a token proves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    namespace: String,
    name: String,
}

impl ServiceAccount {
    /// Builds a service account after checking both parts are DNS-1123 labels.
    pub fn new(namespace: &str, name: &str) -> Result<Self, IdentityError> {
        for part in [namespace, name] {
            if !is_dns1123_label(part) {
                return Err(IdentityError::BadLabel(truncate(part)));
            }
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses a TokenReview username, `system:serviceaccount:NS:SA`, strictly.
    pub fn from_username(username: &str) -> Result<Self, IdentityError> {
        let rest = username
            .strip_prefix("system:serviceaccount:")
            .ok_or(IdentityError::NotServiceAccount)?;
        let (ns, sa) = rest
            .split_once(':')
            .ok_or(IdentityError::NotServiceAccount)?;
        Self::new(ns, sa)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How identities are spelled in this mesh: control-plane namespace and trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    control_namespace: String,
    trust_domain: String,
}

impl Naming {
    pub fn new(control_namespace: &str, trust_domain: &str) -> Result<Self, IdentityError> {
        if !is_dns1123_label(control_namespace) {
            return Err(IdentityError::BadLabel(truncate(control_namespace)));
        }
        if !is_dns1123_subdomain(trust_domain) {
            return Err(IdentityError::BadTrustDomain(truncate(trust_domain)));
        }
        Ok(Self {
            control_namespace: control_namespace.to_owned(),
            trust_domain: trust_domain.to_owned(),
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn control_namespace(&self) -> &str {
        &self.control_namespace
    }

    /// `SA.NS.serviceaccount.identity.CONTROL_NS.TRUST_DOMAIN`
    pub fn linkerd_name(&self, sa: &ServiceAccount) -> String {
        format!(
            "{}.{}.serviceaccount.identity.{}.{}",
            sa.name, sa.namespace, self.control_namespace, self.trust_domain
        )
    }

    /// `spiffe://TRUST_DOMAIN/ns/NS/sa/SA`
    pub fn spiffe_id(&self, sa: &ServiceAccount) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, sa.namespace, sa.name
        )
    }

    /// The service account a Linkerd name denotes, if it is one of this mesh's names.
    pub fn parse_linkerd_name(&self, name: &str) -> Option<ServiceAccount> {
        let suffix = format!(
            ".serviceaccount.identity.{}.{}",
            self.control_namespace, self.trust_domain
        );
        let (sa, ns) = name.strip_suffix(&suffix)?.split_once('.')?;
        ServiceAccount::new(ns, sa).ok()
    }

    /// The service account a SPIFFE ID of this trust domain denotes
    /// (`spiffe://TRUST_DOMAIN/ns/NS/sa/SA`, nothing more).
    pub fn parse_spiffe_id(&self, id: &str) -> Option<ServiceAccount> {
        let path = id
            .strip_prefix("spiffe://")?
            .strip_prefix(self.trust_domain.as_str())?;
        let (ns, sa) = path.strip_prefix("/ns/")?.split_once("/sa/")?;
        ServiceAccount::new(ns, sa).ok()
    }
}

/// RFC 1123 label as Kubernetes uses it: lowercase alphanumerics and '-', ≤ 63 chars.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, ≤ 253 chars.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Keeps hostile input out of error messages beyond a short prefix.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming::new("linkerd", "cluster.local").unwrap()
    }

    #[test]
    fn builds_linkerd_name_and_spiffe_id() {
        let sa = ServiceAccount::new("shop", "web").unwrap();
        assert_eq!(
            naming().linkerd_name(&sa),
            "web.shop.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            naming().spiffe_id(&sa),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
    }

    #[test]
    fn linkerd_name_round_trips() {
        let sa = ServiceAccount::new("shop", "web-1").unwrap();
        let name = naming().linkerd_name(&sa);
        assert_eq!(naming().parse_linkerd_name(&name), Some(sa));
        assert_eq!(
            naming().parse_linkerd_name("web.shop.serviceaccount.identity.other.cluster.local"),
            None
        );
    }

    #[test]
    fn spiffe_id_round_trips_only_for_this_trust_domain() {
        let n = naming();
        let sa = ServiceAccount::new("shop", "web").unwrap();
        assert_eq!(n.parse_spiffe_id(&n.spiffe_id(&sa)), Some(sa));
        for bad in [
            "spiffe://cluster.local.evil/ns/shop/sa/web",
            "spiffe://other.local/ns/shop/sa/web",
            "spiffe://cluster.local/ns/shop/sa/web/extra",
            "spiffe://cluster.local/ns/Shop/sa/web",
            "spiffe://cluster.local/sa/web/ns/shop",
            "https://cluster.local/ns/shop/sa/web",
        ] {
            assert_eq!(n.parse_spiffe_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_usernames_strictly() {
        let sa = ServiceAccount::from_username("system:serviceaccount:shop:web").unwrap();
        assert_eq!((sa.namespace(), sa.name()), ("shop", "web"));
        for bad in [
            "system:serviceaccount:shop",
            "system:serviceaccount:shop:web:x",
            "system:serviceaccount:Shop:web",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:web.x",
            "system:node:shop:web",
            "admin",
        ] {
            assert!(ServiceAccount::from_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_follow_dns1123() {
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("cluster.local"));
        assert!(!is_dns1123_subdomain("cluster..local"));
        assert!(Naming::new("linkerd", "Cluster.local").is_err());
    }
}
