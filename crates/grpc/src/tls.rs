//! The gRPC serving certificate: issued by certmint to itself from the current issuer,
//! renewed at 70 % of its life and as soon as the issuer changes. TLS 1.3, ALPN h2, no
//! client certificate requested (workloads have none at first start; a renewing proxy's
//! possibly expired leaf must never stop it from renewing).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rcgen::{KeyPair, PublicKeyData};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;

use crate::metrics::Metrics;
use certmint_core::ca::{CaStore, LeafNames, LeafPolicy};
use certmint_core::clock::Clock;

/// The `tls:` section: the serving certificate certmint issues itself.
#[derive(Clone, Debug, serde::Deserialize)]
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

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            server_name: None,
            extra_names: Vec::new(),
        }
    }
}

/// The current serving certificate, swapped atomically on renewal.
#[derive(Debug, Default)]
pub struct ServingCert {
    current: ArcSwapOption<CertifiedKey>,
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

impl ServingCert {
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }
}

/// A rustls server configuration: TLS 1.3 only, ALPN h2, certificate from `cert`.
pub fn server_config(cert: Arc<ServingCert>) -> Arc<ServerConfig> {
    let mut cfg = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

/// Keeps `cert` fresh until shutdown.
pub struct Renewer {
    pub store: CaStore,
    pub cert: Arc<ServingCert>,
    pub names: LeafNames,
    pub policy: LeafPolicy,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl Renewer {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut issued: Option<([u8; 32], SystemTime)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            if let Some(next) = self.renew_if_needed(issued) {
                issued = Some(next);
            }
        }
    }

    /// Re-issues when the issuer changed or 70 % of the lifetime has passed.
    fn renew_if_needed(
        &self,
        issued: Option<([u8; 32], SystemTime)>,
    ) -> Option<([u8; 32], SystemTime)> {
        let state = self.store.load()?;
        let now = self.clock.now();
        let digest = state.issuer.digest();
        if issued.is_some_and(|(d, renew_at)| d == digest && now < renew_at)
            || !state.issuer.is_valid_at(now)
        {
            return None;
        }
        match self.issue(&state.issuer, now) {
            Ok((key, not_before, not_after)) => {
                self.cert.current.store(Some(Arc::new(key)));
                Metrics::set_time(&self.metrics.serving_cert_expiry, not_after);
                let life = not_after.duration_since(not_before).unwrap_or_default();
                let renew_at = not_before + life.mul_f64(0.7);
                tracing::info!(names = ?self.names.dns, not_after = %certmint_core::ca::fmt_time(not_after), "serving certificate issued");
                Some((digest, renew_at))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot issue the serving certificate; will retry");
                None
            }
        }
    }

    fn issue(
        &self,
        issuer: &certmint_core::ca::Issuer,
        now: SystemTime,
    ) -> Result<(CertifiedKey, SystemTime, SystemTime), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let leaf = issuer
            .sign_leaf(
                &self.names,
                &key.subject_public_key_info(),
                false,
                &self.policy,
                now,
            )
            .map_err(|e| e.to_string())?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer =
            rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        let mut chain = vec![leaf.der];
        chain.extend(issuer.chain().iter().cloned());
        Ok((
            CertifiedKey::new(chain, signer),
            leaf.not_before,
            leaf.not_after,
        ))
    }
}
