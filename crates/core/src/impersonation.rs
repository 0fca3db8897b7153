//! Impersonation (Istio's `ImpersonatedIdentity`): a trusted node agent, such as ztunnel in
//! shared mode, asks for the certificate of a workload that runs on its own node. Which pods
//! run where comes from a watch of the API server ([`PodDirectory`]), never from the caller.

use std::collections::HashSet;
use std::sync::Arc;

use crate::authn::{Authenticated, PodRef};
use crate::identity::ServiceAccount;

/// Where pods run, as the API server says.
pub trait PodDirectory: Send + Sync + 'static {
    /// The first full list has arrived.
    fn synced(&self) -> bool;
    /// The node of the running pod with `pod`'s uid, when its name and account match.
    fn node_of(&self, pod: &PodRef, account: &ServiceAccount) -> Option<String>;
    /// A running pod with service account `account` is scheduled on `node`.
    fn runs_on(&self, node: &str, account: &ServiceAccount) -> bool;
}

/// Why a caller may not have the identity it asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImpersonationError {
    /// PERMISSION_DENIED: only the configured node accounts may ask for others.
    #[error("{0} is not a trusted node account, so it may ask only for its own identity")]
    NotTrusted(String),
    /// PERMISSION_DENIED: the token says nothing of where the caller runs.
    #[error(
        "the caller's token is bound to no known pod or node; impersonation needs a pod-bound token"
    )]
    NoNode,
    /// PERMISSION_DENIED: the pod the caller's token is bound to is not running (by uid)
    /// where the token says.
    #[error("the caller's pod {0} is not running on the node its token names")]
    CallerPodUnknown(String),
    /// PERMISSION_DENIED: the identity asked for has no pod on the caller's node.
    #[error("no running pod of {account} is on node {node}")]
    NotOnNode { account: String, node: String },
    /// UNAVAILABLE: the pod watch has not delivered its first list yet.
    #[error("pod list not loaded yet")]
    NotSynced,
}

/// The impersonation policy: trusted callers and the pod directory.
pub struct Impersonation {
    trusted: HashSet<ServiceAccount>,
    pods: Arc<dyn PodDirectory>,
}

impl Impersonation {
    pub fn new(
        trusted: impl IntoIterator<Item = ServiceAccount>,
        pods: Arc<dyn PodDirectory>,
    ) -> Self {
        Self {
            trusted: trusted.into_iter().collect(),
            pods,
        }
    }

    /// May `caller` have a certificate for `target`? A caller asking for itself always may.
    pub fn check(
        &self,
        caller: &Authenticated,
        target: &ServiceAccount,
    ) -> Result<(), ImpersonationError> {
        if caller.account == *target {
            return Ok(());
        }
        if !self.trusted.contains(&caller.account) {
            return Err(ImpersonationError::NotTrusted(caller.account.to_string()));
        }
        if !self.pods.synced() {
            return Err(ImpersonationError::NotSynced);
        }
        let node = self.caller_node(caller)?;
        match self.pods.runs_on(&node, target) {
            true => Ok(()),
            false => Err(ImpersonationError::NotOnNode {
                account: target.to_string(),
                node,
            }),
        }
    }

    /// The caller's node: that of the pod its token is bound to (found by uid), else the
    /// token's node claim. Both present must agree.
    fn caller_node(&self, caller: &Authenticated) -> Result<String, ImpersonationError> {
        let Some(pod) = &caller.pod else {
            return caller.node.clone().ok_or(ImpersonationError::NoNode);
        };
        let node = self
            .pods
            .node_of(pod, &caller.account)
            .ok_or_else(|| ImpersonationError::CallerPodUnknown(pod.name.clone()))?;
        match &caller.node {
            Some(claimed) if *claimed != node => {
                Err(ImpersonationError::CallerPodUnknown(pod.name.clone()))
            }
            _ => Ok(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Method;

    /// One pod per (uid, name, account, node); `synced` as given.
    struct Pods(
        bool,
        Vec<(&'static str, &'static str, ServiceAccount, &'static str)>,
    );

    impl PodDirectory for Pods {
        fn synced(&self) -> bool {
            self.0
        }
        fn node_of(&self, pod: &PodRef, account: &ServiceAccount) -> Option<String> {
            let p = self.1.iter().find(|p| p.0 == pod.uid)?;
            (p.1 == pod.name && p.2 == *account).then(|| p.3.to_owned())
        }
        fn runs_on(&self, node: &str, account: &ServiceAccount) -> bool {
            self.1.iter().any(|p| p.3 == node && p.2 == *account)
        }
    }

    fn sa(ns: &str, name: &str) -> ServiceAccount {
        ServiceAccount::new(ns, name).unwrap()
    }

    fn policy(synced: bool) -> Impersonation {
        let pods = Pods(
            synced,
            vec![
                ("u-z", "ztunnel-a", sa("istio-system", "ztunnel"), "a"),
                ("u-w", "web-0", sa("shop", "web"), "a"),
                ("u-d", "db-0", sa("shop", "db"), "b"),
            ],
        );
        Impersonation::new([sa("istio-system", "ztunnel")], Arc::new(pods))
    }

    fn ztunnel(pod: Option<(&str, &str)>, node: Option<&str>) -> Authenticated {
        let pod = pod.and_then(|(n, u)| PodRef::new(Some(n), Some(u)));
        Authenticated::new(sa("istio-system", "ztunnel"), Method::TokenReview, pod).with_node(node)
    }

    #[test]
    fn trusted_agent_may_have_identities_of_pods_on_its_node_only() {
        let p = policy(true);
        let z = ztunnel(Some(("ztunnel-a", "u-z")), None);
        assert_eq!(p.check(&z, &sa("shop", "web")), Ok(()));
        assert_eq!(
            p.check(&z, &sa("shop", "db")),
            Err(ImpersonationError::NotOnNode {
                account: "shop/db".into(),
                node: "a".into()
            })
        );
        assert_eq!(
            p.check(&ztunnel(None, Some("b")), &sa("shop", "db")),
            Ok(())
        );
    }

    #[test]
    fn refusals_name_their_reason() {
        let p = policy(true);
        let web = Authenticated::new(sa("shop", "web"), Method::Jwt, None);
        assert_eq!(p.check(&web, &sa("shop", "web")), Ok(()), "itself");
        assert!(matches!(
            p.check(&web, &sa("shop", "db")),
            Err(ImpersonationError::NotTrusted(_))
        ));
        let nowhere = ztunnel(None, None);
        assert_eq!(
            p.check(&nowhere, &sa("shop", "web")),
            Err(ImpersonationError::NoNode)
        );
        let wrong_uid = ztunnel(Some(("ztunnel-a", "u-other")), None);
        assert!(matches!(
            p.check(&wrong_uid, &sa("shop", "web")),
            Err(ImpersonationError::CallerPodUnknown(_))
        ));
        let disagree = ztunnel(Some(("ztunnel-a", "u-z")), Some("b"));
        assert!(matches!(
            p.check(&disagree, &sa("shop", "db")),
            Err(ImpersonationError::CallerPodUnknown(_))
        ));
        let z = ztunnel(Some(("ztunnel-a", "u-z")), None);
        assert_eq!(
            policy(false).check(&z, &sa("shop", "web")),
            Err(ImpersonationError::NotSynced)
        );
    }
}
