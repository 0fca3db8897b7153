//! The `authn:` section: how workload tokens are authenticated.

use std::path::PathBuf;
use std::time::Duration;

use certmint_core::settings::{SettingError, duration, invalid};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthnMode {
    #[default]
    Kubernetes,
    Jwt,
}

/// How local verification of projected tokens combines with TokenReview (issue 11).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LocalVerification {
    /// TokenReview only.
    Off,
    /// Local failures are refused; the review answers; local acceptance only when no
    /// review answer can be had.
    #[default]
    Fallback,
    /// Tokens judged locally are not reviewed; the others are.
    First,
}

impl std::str::FromStr for LocalVerification {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| [Self::Off, Self::Fallback, Self::First][i])
            .ok_or_else(|| format!("{s:?} is not a mode; use off, fallback or first"))
    }
}

impl LocalVerification {
    /// The names the configuration and the CLI accept.
    pub const NAMES: [&'static str; 3] = ["off", "fallback", "first"];

    pub fn as_str(self) -> &'static str {
        match self {
            LocalVerification::Off => "off",
            LocalVerification::Fallback => "fallback",
            LocalVerification::First => "first",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthnConfig {
    pub mode: AuthnMode,
    pub audiences: Vec<String>,
    pub jwt: JwtConfig,
    pub kubernetes: KubeAuthnConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub keys: Vec<PathBuf>,
    pub issuers: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeAuthnConfig {
    pub legacy_fallback: bool,
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
    pub cache_size: u64,
    pub max_in_flight: usize,
    pub qps: u32,
    pub burst: u32,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub local_verification: LocalVerification,
    /// The accepted token issuer; by default the one the API server's discovery names.
    pub issuer: Option<String>,
    /// Tokens whose `exp − iat` is longer are never judged locally.
    #[serde(deserialize_with = "duration")]
    pub max_token_lifetime: Duration,
    /// Clock difference allowed for `exp`, `nbf` and `iat` in local verification.
    #[serde(deserialize_with = "duration")]
    pub token_clock_skew: Duration,
    /// How often the service-account key set is re-read (also on an unknown `kid`).
    #[serde(deserialize_with = "duration")]
    pub key_refresh_interval: Duration,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        Self {
            mode: AuthnMode::Kubernetes,
            audiences: vec!["identity.l5d.io".into()],
            jwt: JwtConfig::default(),
            kubernetes: KubeAuthnConfig::default(),
        }
    }
}

impl Default for KubeAuthnConfig {
    fn default() -> Self {
        Self {
            legacy_fallback: true,
            cache_ttl: Duration::from_secs(60),
            cache_size: 100_000,
            max_in_flight: 100,
            qps: 100,
            burst: 200,
            timeout: Duration::from_secs(5),
            local_verification: LocalVerification::Fallback,
            issuer: None,
            max_token_lifetime: Duration::from_secs(48 * 3600),
            token_clock_skew: Duration::from_secs(60),
            key_refresh_interval: Duration::from_secs(60),
        }
    }
}

impl AuthnConfig {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        let a = self;
        if a.audiences.iter().any(|s| s.is_empty()) {
            return Err(invalid("authn.audiences", "entries must not be empty"));
        }
        if a.mode == AuthnMode::Jwt {
            if a.jwt.keys.is_empty() {
                return Err(invalid(
                    "authn.jwt.keys",
                    "jwt mode needs at least one public key file",
                ));
            }
            if a.jwt.issuers.is_empty() {
                return Err(invalid(
                    "authn.jwt.issuers",
                    "jwt mode needs at least one accepted issuer",
                ));
            }
            if a.audiences.is_empty() {
                return Err(invalid(
                    "authn.audiences",
                    "jwt mode needs at least one audience",
                ));
            }
        }
        let k = &a.kubernetes;
        if k.max_in_flight == 0 || k.qps == 0 || k.burst == 0 {
            return Err(invalid(
                "authn.kubernetes",
                "max_in_flight, qps and burst must be positive",
            ));
        }
        if k.timeout.is_zero() {
            return Err(invalid("authn.kubernetes.timeout", "must be positive"));
        }
        if k.max_token_lifetime < Duration::from_secs(600) {
            return Err(invalid(
                "authn.kubernetes.max_token_lifetime",
                "must be at least 10m (kubelet's shortest projected token)",
            ));
        }
        if k.token_clock_skew > Duration::from_secs(600) {
            return Err(invalid(
                "authn.kubernetes.token_clock_skew",
                "must be at most 10m",
            ));
        }
        if k.key_refresh_interval < Duration::from_secs(1) {
            return Err(invalid(
                "authn.kubernetes.key_refresh_interval",
                "must be at least 1s",
            ));
        }
        if k.issuer.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "authn.kubernetes.issuer",
                "must not be empty when set",
            ));
        }
        Ok(())
    }
}
