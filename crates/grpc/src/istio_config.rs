//! `istio:` settings: Istio's CA API (`IstioCertificateService`) beside Linkerd's.

use serde::Deserialize;

use certmint_core::identity::ServiceAccount;
use certmint_core::settings::{SettingError as ConfigError, invalid};

/// Istio's CA API, served on the same port, issuer and authenticators as Linkerd's.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IstioConfig {
    pub enabled: bool,
    /// Token audiences this API accepts (Istio's default is `istio-ca`).
    pub audiences: Vec<String>,
    /// Accepted values of the `clusterid` request header (Istio sends `Kubernetes` unless
    /// configured otherwise); a request naming another cluster is refused.
    pub cluster_ids: Vec<String>,
    /// Service accounts (`NAMESPACE/NAME`) that may ask for the identity of a workload with a
    /// pod on their own node, e.g. `istio-system/ztunnel`. Empty: no impersonation.
    pub trusted_node_accounts: Vec<String>,
}

impl Default for IstioConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            audiences: vec!["istio-ca".into()],
            cluster_ids: vec!["Kubernetes".into()],
            trusted_node_accounts: Vec::new(),
        }
    }
}

impl IstioConfig {
    /// The trusted node accounts, parsed.
    fn trusted_accounts(&self) -> Result<Vec<ServiceAccount>, ConfigError> {
        self.trusted_node_accounts
            .iter()
            .map(|s| {
                s.split_once('/')
                    .and_then(|(ns, name)| ServiceAccount::new(ns, name).ok())
                    .ok_or_else(|| {
                        invalid(
                            "istio.trusted_node_accounts",
                            format!("{s:?} is not NAMESPACE/NAME, e.g. istio-system/ztunnel"),
                        )
                    })
            })
            .collect()
    }

    /// Checks the section (only when enabled) and returns the trusted node accounts,
    /// parsed; the first problem names its setting.
    pub fn validate(&self) -> Result<Vec<ServiceAccount>, ConfigError> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(invalid(
                "istio.audiences",
                "needs at least one non-empty audience, e.g. istio-ca",
            ));
        }
        if self.cluster_ids.is_empty() || self.cluster_ids.iter().any(String::is_empty) {
            return Err(invalid(
                "istio.cluster_ids",
                "needs at least one non-empty cluster ID, e.g. Kubernetes",
            ));
        }
        self.trusted_accounts()
    }

    /// Impersonation is configured (it needs a pod watch, so a Kubernetes client).
    pub fn impersonation(&self) -> bool {
        self.enabled && !self.trusted_node_accounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_only_when_enabled_and_names_the_setting() {
        let mut c = IstioConfig {
            trusted_node_accounts: vec!["ztunnel".into()],
            ..IstioConfig::default()
        };
        c.validate().unwrap();
        c.enabled = true;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("istio.trusted_node_accounts"), "{e}");
        c.trusted_node_accounts = vec!["istio-system/ztunnel".into()];
        let trusted = c.validate().unwrap();
        assert_eq!(trusted.len(), 1);
        assert_eq!(trusted[0].to_string(), "istio-system/ztunnel");
        assert!(c.impersonation());
        c.cluster_ids.clear();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("istio.cluster_ids"), "{e}");
    }
}
