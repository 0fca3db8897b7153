//! The `issuer:` and `trust_anchors:` sections: where the CA material comes from.

use std::path::PathBuf;
use std::time::Duration;

use certmint_core::settings::{SettingError, duration, invalid};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Files,
    Kubernetes,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    pub source: SourceKind,
    pub dir: PathBuf,
    pub namespace: String,
    pub secret: String,
    #[serde(deserialize_with = "duration")]
    pub reload_interval: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnchorsConfig {
    pub source: SourceKind,
    pub file: PathBuf,
    pub namespace: String,
    pub configmap: String,
    pub key: String,
    #[serde(deserialize_with = "duration")]
    pub reload_interval: Duration,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Files,
            dir: "/var/run/certmint/issuer".into(),
            namespace: "linkerd".into(),
            secret: "linkerd-identity-issuer".into(),
            reload_interval: Duration::from_secs(60),
        }
    }
}

impl Default for AnchorsConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Files,
            file: "/var/run/certmint/anchors/ca-bundle.crt".into(),
            namespace: "linkerd".into(),
            configmap: "linkerd-identity-trust-roots".into(),
            key: "ca-bundle.crt".into(),
            reload_interval: Duration::from_secs(60),
        }
    }
}

/// Reload intervals shorter than this would spin on a bad source.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(100);

impl IssuerConfig {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.reload_interval < MIN_RELOAD_INTERVAL {
            return Err(invalid("issuer.reload_interval", "must be at least 100ms"));
        }
        Ok(())
    }
}

impl AnchorsConfig {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.reload_interval < MIN_RELOAD_INTERVAL {
            return Err(invalid(
                "trust_anchors.reload_interval",
                "must be at least 100ms",
            ));
        }
        Ok(())
    }
}
