//! Configuration: a YAML file, overridden by `CERTMINT_*` environment variables and flags,
//! validated once at start-up with errors that name the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use certmint_core::identity::{Naming, ServiceAccount, is_dns1123_label, is_dns1123_subdomain};
use certmint_core::settings::SettingError;

// Each section's type belongs to the crate that uses it; this module assembles them.
pub use certmint_audit::{AuditConfig, OnFailure};
pub use certmint_core::ca::LeafPolicy;
pub use certmint_core::settings::parse_duration;
pub use certmint_grpc::Limits;
pub use certmint_grpc::istio_config::IstioConfig;
pub use certmint_grpc::tls::TlsConfig;
pub use certmint_hsm::HsmConfig;
pub use certmint_k8s::authn::settings::{
    AuthnConfig, AuthnMode, JwtConfig, KubeAuthnConfig, LocalVerification,
};
pub use certmint_k8s::podcert::PodCertConfig;
pub use certmint_k8s::sources::settings::{AnchorsConfig, IssuerConfig, SourceKind};
pub use certmint_k8s::trust::RotationConfig;

/// A configuration that passed every check, with the values checking parsed.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config: Config,
    pub naming: Naming,
    /// `istio.trusted_node_accounts`, parsed (empty unless Istio's API is enabled).
    pub trusted_node_accounts: Vec<ServiceAccount>,
}

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
    /// A setting of one section (each crate checks its own).
    #[error(transparent)]
    Invalid(#[from] SettingError),
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(certmint_core::settings::invalid(setting, message))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
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
    pub issuance: LeafPolicy,
    pub issuer: IssuerConfig,
    pub trust_anchors: AnchorsConfig,
    pub authn: AuthnConfig,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub audit: AuditConfig,
    pub istio: IstioConfig,
    /// Issuer keys in a PKCS#11 token (an issuer key entry holding a `pkcs11:` URI).
    pub hsm: Option<HsmConfig>,
    /// The trust interlock: issuers under a new anchor wait for the workloads to trust it.
    pub rotation: RotationConfig,
    /// certmint as a Kubernetes PodCertificateRequest signer.
    pub pod_certificates: PodCertConfig,
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
            issuance: LeafPolicy::default(),
            issuer: IssuerConfig::default(),
            trust_anchors: AnchorsConfig::default(),
            authn: AuthnConfig::default(),
            tls: TlsConfig::default(),
            limits: Limits::default(),
            audit: AuditConfig::default(),
            istio: IstioConfig::default(),
            hsm: None,
            rotation: RotationConfig::default(),
            pod_certificates: PodCertConfig::default(),
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
        self.clone().check().map(drop)
    }

    /// Checks every setting once and keeps what checking parsed: the configuration
    /// `serve` runs with. The first problem is returned, naming its setting.
    pub fn check(self) -> Result<Settings, ConfigError> {
        let naming = self.naming()?;
        self.issuance.validate()?;
        self.issuer.validate()?;
        self.trust_anchors.validate()?;
        self.authn.validate()?;
        self.limits.validate()?;
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
        let trusted_node_accounts = self.istio.validate()?;
        self.audit.validate()?;
        if let Some(hsm) = &self.hsm {
            hsm.validate()?;
        }
        self.rotation.validate()?;
        if self.pod_certificates.enabled {
            self.pod_certificates.validate()?;
        }
        Ok(Settings {
            config: self,
            naming,
            trusted_node_accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    #[test]
    fn audit_section_parses_is_checked_and_ships_its_defaults() {
        let c = Config::from_yaml(
            "audit: {enabled: true, on_failure: continue, file: {path: /tmp/a.jsonl}}",
            "t",
        )
        .unwrap();
        assert_eq!(c.audit.on_failure, OnFailure::Continue);
        assert_eq!(c.audit.file.as_ref().unwrap().keep, 10);
        c.validate().unwrap();
        let shipped = include_str!("../config/certmint.yaml");
        let shipped = Config::from_yaml(shipped, "config/certmint.yaml").unwrap();
        let (a, d) = (&shipped.audit, &AuditConfig::default());
        assert_eq!(
            (a.enabled, a.on_failure, a.stdout),
            (d.enabled, d.on_failure, d.stdout)
        );
        assert_eq!(
            (a.checkpoint.interval, a.checkpoint.records),
            (d.checkpoint.interval, 1000)
        );
        assert_eq!(a.queue, d.queue);
        let bad = Config::from_yaml("audit: {enabled: true}", "t").unwrap();
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("without a sink"), "{msg}");
    }

    #[test]
    fn pod_certificates_section_parses_is_checked_and_ships_its_defaults() {
        let c = Config::from_yaml(
            "pod_certificates: {enabled: true, signer_name: example.com/mesh, pod_wait: 5s}",
            "t",
        )
        .unwrap();
        assert_eq!(c.pod_certificates.signer_name, "example.com/mesh");
        c.validate().unwrap();
        let bad = Config::from_yaml(
            "pod_certificates: {enabled: true, signer_name: kubernetes.io/x}",
            "t",
        )
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("pod_certificates.signer_name"), "{err}");
        let shipped = include_str!("../config/certmint.yaml");
        let shipped = Config::from_yaml(shipped, "config/certmint.yaml").unwrap();
        assert_eq!(shipped.pod_certificates, PodCertConfig::default());
    }

    #[test]
    fn pod_certificates_api_version_is_auto_v1_or_v1beta1() {
        use certmint_k8s::podcert::ApiVersion;
        let c = Config::from_yaml("pod_certificates: {api_version: v1beta1}", "t").unwrap();
        assert_eq!(c.pod_certificates.api_version, ApiVersion::V1beta1);
        assert_eq!(PodCertConfig::default().api_version, ApiVersion::Auto);
        let err = Config::from_yaml("pod_certificates: {api_version: v2}", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pod_certificates.api_version"), "{err}");
        assert!(err.contains("v1beta1") && !err.contains('\n'), "{err}");
    }
}
