//! The `rotation:` section: the trust interlock (issue 21).

use serde::Deserialize;

use certmint_core::settings::{SettingError, invalid};

/// `rotation:` — hold a new issuer under another trust anchor while running meshed pods
/// do not trust that anchor (docs/operations.md, "Rotate the trust anchors").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RotationConfig {
    /// On whenever certmint has a Kubernetes client (it needs the cluster-wide pod watch);
    /// without one the interlock is off and issuers are activated as they come.
    pub interlock: bool,
    /// ConfigMaps (`NAMESPACE/NAME`) that pods read their trust bundle from when the proxy
    /// starts (Linkerd's `valueFrom`), followed so that certmint knows which version each
    /// proxy read.
    pub trust_configmaps: Vec<String>,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            interlock: true,
            trust_configmaps: vec!["linkerd/linkerd-identity-trust-roots".into()],
        }
    }
}

impl RotationConfig {
    /// The ConfigMaps as (namespace, name).
    pub fn configmaps(&self) -> Vec<(String, String)> {
        self.trust_configmaps
            .iter()
            .filter_map(|c| c.split_once('/'))
            .map(|(ns, n)| (ns.to_owned(), n.to_owned()))
            .collect()
    }

    pub fn validate(&self) -> Result<(), SettingError> {
        for c in &self.trust_configmaps {
            let ok = c
                .split_once('/')
                .is_some_and(|(ns, n)| label(ns) && name(n));
            if !ok {
                return Err(invalid(
                    "rotation.trust_configmaps",
                    format!(
                        "{c:?} is not NAMESPACE/NAME, e.g. linkerd/linkerd-identity-trust-roots"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_are_namespace_slash_name() {
        assert!(RotationConfig::default().validate().is_ok());
        let bad = RotationConfig {
            trust_configmaps: vec!["linkerd-identity-trust-roots".into()],
            ..RotationConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rotation.trust_configmaps"), "{e}");
    }
}
