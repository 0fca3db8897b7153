//! Validates new issuer material and anchor bundles and swaps them into the store.
//! A rejected update never replaces what is in use; every attempt is logged and counted.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::ca::{CaState, CaStore, Issuer, IssuerMaterial, LeafNames, TrustAnchors};
use crate::clock::Clock;
use crate::metrics::{Metrics, ReloadLabels};

/// Where reload outcomes are reported beyond logs and metrics (Kubernetes Events).
pub trait ReloadReporter: Send + Sync + 'static {
    fn issuer_applied(&self, _issuer: &Issuer) {}
    fn issuer_skipped(&self, _reason: &str) {}
}

/// A reporter that reports nothing beyond logs and metrics.
pub struct NoReport;
impl ReloadReporter for NoReport {}

#[derive(Default)]
struct State {
    anchors: Option<([u8; 32], Arc<TrustAnchors>)>,
    /// The newest issuer material a source delivered (applied or not).
    seen: Option<IssuerMaterial>,
    /// The material behind the issuer in the store.
    current: Option<IssuerMaterial>,
}

/// The single place issuer and anchor updates are validated and applied.
pub struct Reloader {
    store: CaStore,
    probe: LeafNames,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    reporter: Arc<dyn ReloadReporter>,
    state: Mutex<State>,
}

impl Reloader {
    pub fn new(
        store: CaStore,
        probe: LeafNames,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        reporter: Arc<dyn ReloadReporter>,
    ) -> Self {
        Self {
            store,
            probe,
            metrics,
            clock,
            reporter,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source read issuer material (possibly the same as before).
    pub fn issuer_read(&self, source: &'static str, material: IssuerMaterial) {
        let mut st = self.lock();
        if st
            .current
            .as_ref()
            .is_some_and(|c| c.digest() == material.digest())
        {
            self.count_issuer(source, "unchanged");
            return;
        }
        st.seen = Some(material.clone());
        let Some((_, anchors)) = st.anchors.clone() else {
            // Not a rejection: it is validated as soon as anchors arrive.
            tracing::info!(
                source,
                "issuer read before any trust anchors; waiting for anchors"
            );
            return;
        };
        match Issuer::load(&material, &anchors, &self.probe, self.clock.now()) {
            Ok(issuer) => self.apply(&mut st, source, issuer, material, anchors),
            Err(e) => self.reject_issuer(source, &e.to_string()),
        }
    }

    /// A source read something that cannot be issuer material (wrong Secret layout).
    pub fn issuer_invalid(&self, source: &'static str, reason: &str) {
        let _st = self.lock();
        self.reject_issuer(source, reason);
    }

    /// A source found its issuer gone (Secret deleted, files removed): keep signing with
    /// the last good issuer and say so.
    pub fn issuer_missing(&self, source: &'static str, reason: &str) {
        let st = self.lock();
        self.count_issuer(source, "deleted");
        if st.current.is_some() {
            tracing::warn!(
                source,
                reason,
                "issuer source is gone; keeping the last good issuer"
            );
            self.reporter.issuer_skipped(&format!(
                "issuer source is gone ({reason}); keeping the last good issuer"
            ));
        } else {
            tracing::warn!(source, reason, "no issuer available yet");
        }
    }

    /// A source read a trust-anchor bundle.
    pub fn anchors_read(&self, source: &'static str, pem: &[u8]) {
        let mut st = self.lock();
        let digest = crate::ca::cert::sha256(pem);
        if st.anchors.as_ref().is_some_and(|(d, _)| *d == digest) {
            self.count_anchors(source, "unchanged");
            return;
        }
        let now = self.clock.now();
        let anchors = match TrustAnchors::from_pem(pem, now) {
            Ok(a) => Arc::new(a),
            Err(e) => return self.reject_anchors(source, &e.to_string()),
        };
        // Prefer the newest issuer a source delivered, then the one in use.
        let candidates: Vec<IssuerMaterial> =
            st.seen.iter().chain(st.current.iter()).cloned().collect();
        if candidates.is_empty() {
            self.accept_anchors(&mut st, source, digest, anchors);
            return;
        }
        for material in candidates {
            if let Ok(issuer) = Issuer::load(&material, &anchors, &self.probe, now) {
                self.accept_anchors(&mut st, source, digest, anchors.clone());
                if st.current.as_ref() != Some(&material) {
                    self.apply(&mut st, source, issuer, material, anchors);
                } else {
                    self.store.store(CaState {
                        issuer: Arc::new(issuer),
                        anchors,
                    });
                }
                return;
            }
        }
        if st.current.is_some() {
            self.reject_anchors(
                source,
                "the issuer in use does not chain to the new trust anchors",
            );
        } else {
            self.accept_anchors(&mut st, source, digest, anchors);
        }
    }

    fn accept_anchors(
        &self,
        st: &mut State,
        source: &'static str,
        digest: [u8; 32],
        anchors: Arc<TrustAnchors>,
    ) {
        self.metrics.anchor_expiry.clear();
        for c in anchors.certs() {
            let labels = crate::metrics::FingerprintLabel {
                fingerprint: c.fingerprint_sha256.clone(),
                subject: c.subject.clone(),
            };
            Metrics::set_time(
                &self.metrics.anchor_expiry.get_or_create(&labels),
                c.not_after,
            );
        }
        Metrics::set_time(
            &self.metrics.anchors_earliest_expiry,
            anchors.earliest_expiry(),
        );
        tracing::info!(source, anchors = anchors.certs().len(), earliest_expiry = %crate::ca::fmt_time(anchors.earliest_expiry()), "trust anchors applied");
        self.count_anchors(source, "applied");
        st.anchors = Some((digest, anchors));
    }

    fn apply(
        &self,
        st: &mut State,
        source: &'static str,
        issuer: Issuer,
        material: IssuerMaterial,
        anchors: Arc<TrustAnchors>,
    ) {
        tracing::info!(
            source,
            subject = %issuer.cert().subject,
            serial = %issuer.cert().serial_hex,
            not_after = %crate::ca::fmt_time(issuer.chain_not_after()),
            "issuer applied"
        );
        Metrics::set_time(&self.metrics.issuer_expiry, issuer.chain_not_after());
        Metrics::set_time(&self.metrics.issuer_not_before, issuer.cert().not_before);
        Metrics::set_time(&self.metrics.issuer_last_reload, self.clock.now());
        self.count_issuer(source, "applied");
        self.reporter.issuer_applied(&issuer);
        self.store.store(CaState {
            issuer: Arc::new(issuer),
            anchors,
        });
        st.current = Some(material);
    }

    fn reject_issuer(&self, source: &'static str, reason: &str) {
        tracing::warn!(
            source,
            reason,
            "issuer update rejected; keeping the current issuer"
        );
        self.count_issuer(source, "rejected");
        self.reporter.issuer_skipped(reason);
    }

    fn reject_anchors(&self, source: &'static str, reason: &str) {
        tracing::warn!(
            source,
            reason,
            "trust anchors update rejected; keeping the current anchors"
        );
        self.count_anchors(source, "rejected");
    }

    fn count_issuer(&self, source: &'static str, result: &'static str) {
        self.metrics
            .issuer_reloads
            .get_or_create(&ReloadLabels { source, result })
            .inc();
    }

    fn count_anchors(&self, source: &'static str, result: &'static str) {
        self.metrics
            .anchor_reloads
            .get_or_create(&ReloadLabels { source, result })
            .inc();
    }
}
