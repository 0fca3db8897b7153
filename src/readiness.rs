//! What `/ready` and gRPC health report. Shared by the wiring (`app`), the admin
//! endpoints and the gRPC server, so none of them depends on another for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use certmint_audit::AuditLog;
use certmint_core::ca::CaStore;
use certmint_core::clock::Clock;
use certmint_grpc::tls::ServingCert;

/// Ready = a valid issuer and anchors are loaded, the gRPC port is listening, TokenReview
/// access is confirmed (Kubernetes authentication) and, with TLS, a serving certificate
/// exists.
pub struct Readiness {
    store: CaStore,
    clock: Arc<dyn Clock>,
    listening: AtomicBool,
    /// False until TokenReview access is confirmed (Kubernetes authentication only).
    authorized: AtomicBool,
    serving_cert: Option<Arc<ServingCert>>,
    /// Set when `audit.on_failure: refuse`: not ready while records cannot be written.
    audit: OnceLock<Arc<AuditLog>>,
}

impl Readiness {
    pub fn new(
        store: CaStore,
        clock: Arc<dyn Clock>,
        needs_tokenreview_access: bool,
        serving_cert: Option<Arc<ServingCert>>,
    ) -> Self {
        Self {
            store,
            clock,
            listening: AtomicBool::new(false),
            authorized: AtomicBool::new(!needs_tokenreview_access),
            serving_cert,
            audit: OnceLock::new(),
        }
    }

    /// Readiness follows the audit sink (used with `audit.on_failure: refuse`).
    pub fn set_audit(&self, audit: Arc<AuditLog>) {
        let _ = self.audit.set(audit);
    }

    /// The gRPC listener is bound and serving.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// The API server confirmed that certmint may create TokenReviews.
    pub fn set_authorized(&self) {
        self.authorized.store(true, Ordering::Release);
    }

    /// Ok when ready, else the first reason it is not.
    pub fn check(&self) -> Result<(), &'static str> {
        let state = self
            .store
            .load()
            .ok_or("no valid issuer and trust anchors loaded")?;
        if !state.issuer.is_valid_at(self.clock.now()) {
            return Err("issuer is expired or not yet valid");
        }
        if !state.issuer.key_available() {
            return Err("the issuer's HSM key cannot sign (token unavailable; reconnecting)");
        }
        if !self.listening.load(Ordering::Acquire) {
            return Err("gRPC server not listening yet");
        }
        if !self.authorized.load(Ordering::Acquire) {
            return Err("not allowed to create tokenreviews");
        }
        if self.serving_cert.as_ref().is_some_and(|c| !c.is_loaded()) {
            return Err("no serving certificate yet");
        }
        if self.audit.get().is_some_and(|a| !a.healthy()) {
            return Err("audit records cannot be written (audit.on_failure: refuse)");
        }
        Ok(())
    }
}

impl certmint_grpc::Health for Readiness {
    fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}
