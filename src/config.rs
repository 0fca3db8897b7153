//! Configuration: a YAML file, overridden by `CERTMINT_*` environment variables and flags,
//! validated once at start-up with errors that name the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::identity::{Naming, is_dns1123_label, is_dns1123_subdomain};

mod istio;
pub use istio::IstioConfig;

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Files,
    Kubernetes,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthnMode {
    #[default]
    Kubernetes,
    Jwt,
}

/// How local verification of projected tokens combines with TokenReview (issue 11).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
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

impl LocalVerification {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalVerification::Off => "off",
            LocalVerification::Fallback => "fallback",
            LocalVerification::First => "first",
        }
    }
}

/// The whole configuration of `certmint serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub trust_domain: String,
    pub control_namespace: String,
    pub log_format: LogFormat,
    pub kubeconfig: Option<PathBuf>,
    pub issuance: Issuance,
    pub issuer: IssuerConfig,
    pub trust_anchors: AnchorsConfig,
    pub authn: AuthnConfig,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub audit: crate::audit::AuditConfig,
    pub istio: IstioConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Issuance {
    #[serde(deserialize_with = "duration")]
    pub lifetime: Duration,
    #[serde(deserialize_with = "duration")]
    pub clock_skew: Duration,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    /// The identity the serving certificate names; defaults to
    /// `certmint.CONTROL_NS.serviceaccount.identity.CONTROL_NS.TRUST_DOMAIN`.
    pub server_name: Option<String>,
    /// Further DNS names for the serving certificate: the addresses clients dial by name,
    /// e.g. `certmint.linkerd.svc` for Istio's agents and ztunnel.
    pub extra_names: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    pub max_message_size: usize,
    pub max_concurrent_streams: u32,
    #[serde(deserialize_with = "duration")]
    pub keepalive_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// A TLS handshake must finish within this of the accept.
    #[serde(deserialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// The HTTP/2 connection preface must arrive within this of the accept (plaintext) or
    /// of the finished handshake (TLS): a silent or trickling connection is closed.
    #[serde(deserialize_with = "duration")]
    pub preface_timeout: Duration,
    /// Open gRPC connections (including handshakes); further ones are accepted and closed.
    /// Keep it below the file-descriptor limit.
    pub max_connections: usize,
    /// Largest request header block (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE), bytes.
    pub max_header_list_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 8080).into(),
            admin_listen: ([0, 0, 0, 0], 9990).into(),
            trust_domain: "cluster.local".into(),
            control_namespace: "linkerd".into(),
            log_format: LogFormat::Plain,
            kubeconfig: None,
            issuance: Issuance::default(),
            issuer: IssuerConfig::default(),
            trust_anchors: AnchorsConfig::default(),
            authn: AuthnConfig::default(),
            tls: TlsConfig::default(),
            limits: Limits::default(),
            audit: crate::audit::AuditConfig::default(),
            istio: IstioConfig::default(),
        }
    }
}

impl Default for Issuance {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(24 * 3600),
            clock_skew: Duration::from_secs(20),
        }
    }
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

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            server_name: None,
            extra_names: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_size: 64 * 1024,
            max_concurrent_streams: 100,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(25),
            handshake_timeout: Duration::from_secs(10),
            preface_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_header_list_size: 16 * 1024,
        }
    }
}

impl Config {
    /// Parses YAML text (an empty document means all defaults). Errors name the setting.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut path = String::new();
        serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        })
        .map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            let message = match path.as_str() {
                "" | "." => first,
                p => format!("setting {p}: {first}"),
            };
            ConfigError::Parse {
                path: origin.to_owned(),
                message,
            }
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_yaml(&text, &shown)
    }

    /// The naming scheme; also validates `trust_domain` and `control_namespace`.
    pub fn naming(&self) -> Result<Naming, ConfigError> {
        if !is_dns1123_subdomain(&self.trust_domain) {
            return Err(invalid(
                "trust_domain",
                "must be a DNS-1123 subdomain such as cluster.local",
            ));
        }
        if !is_dns1123_label(&self.control_namespace) {
            return Err(invalid("control_namespace", "must be a DNS-1123 label"));
        }
        Naming::new(&self.control_namespace, &self.trust_domain)
            .map_err(|e| invalid("trust_domain", e.to_string()))
    }

    /// The name the TLS serving certificate carries.
    pub fn server_name(&self) -> String {
        self.tls.server_name.clone().unwrap_or_else(|| {
            format!(
                "certmint.{ns}.serviceaccount.identity.{ns}.{td}",
                ns = self.control_namespace,
                td = self.trust_domain
            )
        })
    }

    /// Checks every setting; the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.naming()?;
        let i = &self.issuance;
        if i.lifetime < Duration::from_secs(60) || i.lifetime > Duration::from_secs(365 * 24 * 3600)
        {
            return Err(invalid("issuance.lifetime", "must be between 1m and 8760h"));
        }
        if i.clock_skew > Duration::from_secs(3600) {
            return Err(invalid("issuance.clock_skew", "must be at most 1h"));
        }
        for (setting, d) in [
            ("issuer.reload_interval", self.issuer.reload_interval),
            (
                "trust_anchors.reload_interval",
                self.trust_anchors.reload_interval,
            ),
        ] {
            if d < Duration::from_millis(100) {
                return Err(invalid(setting, "must be at least 100ms"));
            }
        }
        self.validate_authn()?;
        self.validate_limits()?;
        if let Some(bad) = self
            .tls
            .extra_names
            .iter()
            .find(|n| !is_dns1123_subdomain(n))
        {
            return Err(invalid(
                "tls.extra_names",
                format!("{bad:?} is not a DNS name such as certmint.linkerd.svc"),
            ));
        }
        self.istio.validate()?;
        self.audit.validate()
    }

    fn validate_authn(&self) -> Result<(), ConfigError> {
        let a = &self.authn;
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

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.request_timeout.is_zero() {
            return Err(invalid("limits.request_timeout", "must be positive"));
        }
        if !(1024..=4 * 1024 * 1024).contains(&l.max_message_size) {
            return Err(invalid(
                "limits.max_message_size",
                "must be between 1024 and 4194304 bytes",
            ));
        }
        if l.max_concurrent_streams == 0 {
            return Err(invalid("limits.max_concurrent_streams", "must be positive"));
        }
        if l.handshake_timeout.is_zero() || l.preface_timeout.is_zero() {
            return Err(invalid(
                "limits.handshake_timeout/preface_timeout",
                "must be positive",
            ));
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be positive"));
        }
        if !(1024..=1024 * 1024).contains(&l.max_header_list_size) {
            return Err(invalid(
                "limits.max_header_list_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        Ok(())
    }
}

/// Durations written like `24h`, `90s`, `500ms`, `1h30m`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration ({e}); write e.g. 90s, 5m or 24h"
        ))
    })
}

/// Parses a duration flag value.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_all_defaults() {
        let c = Config::from_yaml("", "test").unwrap();
        assert_eq!(c.issuance.lifetime, Duration::from_secs(86400));
        assert_eq!(c.authn.audiences, vec!["identity.l5d.io"]);
        assert_eq!(
            c.server_name(),
            "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local"
        );
        c.validate().unwrap();
    }

    #[test]
    fn parses_nested_settings_and_durations() {
        let c = Config::from_yaml(
            "listen: 127.0.0.1:1\nissuance:\n  lifetime: 1h30m\nauthn:\n  mode: jwt\n  jwt:\n    keys: [/k.pem]\n    issuers: [me]\n",
            "test",
        )
        .unwrap();
        assert_eq!(c.issuance.lifetime, Duration::from_secs(5400));
        assert_eq!(c.authn.mode, AuthnMode::Jwt);
        assert_eq!(c.listen.port(), 1);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_setting() {
        let e = Config::from_yaml("listn: x\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listn"), "{e}");
        let mut c = Config::default();
        c.issuance.lifetime = Duration::from_secs(1);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("issuance.lifetime")
        );
        c = Config::default();
        c.authn.mode = AuthnMode::Jwt;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("authn.jwt.keys")
        );
        c = Config::default();
        c.trust_domain = "Bad_Domain".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("trust_domain")
        );
    }
}
