//! Validates new issuer material and anchor bundles and swaps them into the store.
//! A rejected update never replaces what is in use; every attempt is logged and counted.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::remind::Reminder;
use crate::metrics::{Metrics, Reload, ReloadLabels, Source};
use certmint_core::ca::{
    CaState, CaStore, Issuer, IssuerMaterial, KeyResolver, LeafNames, NoExternalKeys, TrustAnchors,
};
use certmint_core::clock::Clock;
use certmint_core::digest::sha256;
use certmint_core::trust::{Hold, TrustGate};

/// Where reload outcomes are reported beyond logs and metrics (Kubernetes Events).
pub trait ReloadReporter: Send + Sync + 'static {
    fn issuer_applied(&self, _issuer: &Issuer) {}
    fn issuer_skipped(&self, _reason: &str) {}
}

/// A reporter that reports nothing beyond logs and metrics.
pub struct NoReport;
impl ReloadReporter for NoReport {}

struct State {
    anchors: Option<([u8; 32], Arc<TrustAnchors>)>,
    /// The newest issuer material a source delivered (applied or not), and from where.
    seen: Option<IssuerMaterial>,
    seen_source: Option<Source>,
    /// The source's issuer carries the override annotation.
    forced: bool,
    /// The material behind the issuer in the store.
    current: Option<IssuerMaterial>,
    /// Whether the sources last found an issuer / anchors object (to tell `deleted`
    /// from `missing`).
    issuer_present: bool,
    anchors_present: bool,
    /// Repeated refusals are logged when first seen, then once per reload interval.
    issuer_refusals: Reminder,
    anchor_refusals: Reminder,
    /// A held issuer is said once, again when the count of workloads holding it back
    /// changes, and otherwise every [`HOLD_REMINDER`].
    holds: Reminder,
}

/// How often an unchanged hold is said again (a hold can last hours, until pods restart).
const HOLD_REMINDER: Duration = Duration::from_secs(600);

/// How often a refusal of unchanged content is logged again: the sources' reload
/// intervals, so each periodic re-read of the same bad content does not add a line.
#[derive(Clone, Copy, Debug)]
pub struct Reminders {
    pub issuer: Duration,
    pub anchors: Duration,
}

impl Default for Reminders {
    fn default() -> Self {
        Self {
            issuer: Duration::from_secs(60),
            anchors: Duration::from_secs(60),
        }
    }
}

/// The single place issuer and anchor updates are validated and applied.
pub struct Reloader {
    store: CaStore,
    probe: LeafNames,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    reporter: Arc<dyn ReloadReporter>,
    /// Resolves issuer keys held outside certmint (PKCS#11 URIs).
    keys: Arc<dyn KeyResolver>,
    /// The trust interlock (issue 21): asked before an issuer under another anchor is
    /// activated. None: off (files mode, no pod watch).
    gate: Option<Arc<dyn TrustGate>>,
    /// Told which anchors are served (what Istio workloads pick up).
    trust: Option<Arc<crate::trust::TrustIndex>>,
    /// Told when an issuer is activated by the override although workloads refuse it.
    on_override: Option<OverrideHook>,
    state: Mutex<State>,
}

/// Called with the issuer and what the interlock said, when the override activated it.
pub type OverrideHook = Arc<dyn Fn(&Issuer, &Hold) + Send + Sync>;

/// The issuer Secret annotation that activates a held issuer anyway (an emergency: the
/// workloads that do not trust its anchor will refuse its leaves and certmint itself).
pub const OVERRIDE_ANNOTATION: &str = "certmint.io/activate-untrusted-issuer";

impl Reloader {
    pub fn new(
        store: CaStore,
        probe: LeafNames,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        reporter: Arc<dyn ReloadReporter>,
        reminders: Reminders,
    ) -> Self {
        let state = State {
            anchors: None,
            seen: None,
            seen_source: None,
            forced: false,
            current: None,
            issuer_present: false,
            anchors_present: false,
            issuer_refusals: Reminder::new(reminders.issuer),
            anchor_refusals: Reminder::new(reminders.anchors),
            holds: Reminder::new(HOLD_REMINDER),
        };
        Self {
            store,
            probe,
            metrics,
            clock,
            reporter,
            keys: Arc::new(NoExternalKeys),
            gate: None,
            trust: None,
            on_override: None,
            state: Mutex::new(state),
        }
    }

    /// An issuer whose chain ends at another anchor than the active one's is activated
    /// only when `gate` does not hold it.
    pub fn with_gate(mut self, gate: Arc<dyn TrustGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The interlock asks `index`, and `index` learns which anchors are served.
    pub fn with_trust(mut self, index: Arc<crate::trust::TrustIndex>) -> Self {
        self.gate = Some(index.clone());
        self.trust = Some(index);
        self
    }

    /// `hook` hears of every issuer the override activated (the audit trail).
    pub fn with_override_hook(mut self, hook: OverrideHook) -> Self {
        self.on_override = Some(hook);
        self
    }

    /// Whether the issuer material the source reads next carries the override.
    pub fn issuer_override(&self, on: bool) {
        self.lock().forced = on;
    }

    /// What the workloads trust changed (a pod came or went): a held issuer is looked at
    /// again.
    pub fn trust_changed(&self) {
        let waiting = {
            let st = self.lock();
            let waiting = st.seen.clone().filter(|s| st.current.as_ref() != Some(s));
            waiting.zip(st.seen_source)
        };
        if let Some((material, source)) = waiting {
            self.issuer_read(source, material);
        }
    }

    /// Issuer keys may be PKCS#11 URIs that `keys` resolves.
    pub fn with_keys(mut self, keys: Arc<dyn KeyResolver>) -> Self {
        self.keys = keys;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source read issuer material (possibly the same as before).
    pub fn issuer_read(&self, source: Source, material: IssuerMaterial) {
        let mut st = self.lock();
        st.issuer_present = true;
        let digest = material.digest();
        if st.current.as_ref().is_some_and(|c| c.digest() == digest) {
            self.count_issuer(source, Reload::Unchanged);
            return;
        }
        st.seen = Some(material.clone());
        st.seen_source = Some(source);
        let Some((_, anchors)) = st.anchors.clone() else {
            // Not a rejection: it is validated as soon as anchors arrive.
            if st.issuer_refusals.due(digest, self.clock.now()) {
                tracing::info!(%source,
                    "issuer read before any trust anchors; waiting for anchors"
                );
            }
            return;
        };
        match Issuer::load_with(
            &material,
            &anchors,
            &self.probe,
            self.clock.now(),
            self.keys.as_ref(),
        ) {
            Ok(issuer) => self.apply(&mut st, source, issuer, material, anchors),
            Err(e) => self.reject_issuer(&mut st, source, digest, &e.to_string()),
        }
    }

    /// A source read something that cannot be issuer material (wrong Secret layout).
    pub fn issuer_invalid(&self, source: Source, reason: &str) {
        let mut st = self.lock();
        st.issuer_present = true;
        self.reject_issuer(&mut st, source, sha256(reason.as_bytes()), reason);
    }

    /// A source found no issuer (Secret absent, files removed): keep signing with the
    /// last good issuer and say so. Counted `deleted` on the transition from present to
    /// absent, `missing` on every read while it stays absent.
    pub fn issuer_missing(&self, source: Source, reason: &str) {
        let mut st = self.lock();
        let now = self.clock.now();
        let key = sha256(reason.as_bytes());
        if std::mem::replace(&mut st.issuer_present, false) {
            self.count_issuer(source, Reload::Deleted);
            st.issuer_refusals.clear();
            st.issuer_refusals.due(key, now);
            let keeping = if st.current.is_some() {
                "keeping the last good issuer"
            } else {
                "no issuer available yet"
            };
            tracing::warn!(%source, reason, "issuer source is gone; {keeping}");
            self.reporter
                .issuer_skipped(&format!("issuer source is gone ({reason}); {keeping}"));
            return;
        }
        self.count_issuer(source, Reload::Missing);
        if st.issuer_refusals.due(key, now) {
            match st.current.is_some() {
                true => tracing::warn!(%source,
                    reason,
                    "issuer source missing; keeping the last good issuer"
                ),
                false => tracing::warn!(%source, reason, "no issuer available yet"),
            }
        }
    }

    /// A source read something that cannot be an anchor bundle (wrong ConfigMap key).
    pub fn anchors_invalid(&self, source: Source, reason: &str) {
        let mut st = self.lock();
        st.anchors_present = true;
        self.reject_anchors(&mut st, source, sha256(reason.as_bytes()), reason);
    }

    /// A source found no anchor bundle: keep the current anchors. Counted like
    /// [`Self::issuer_missing`].
    pub fn anchors_missing(&self, source: Source, reason: &str) {
        let mut st = self.lock();
        let now = self.clock.now();
        let key = sha256(reason.as_bytes());
        let result = match std::mem::replace(&mut st.anchors_present, false) {
            true => {
                st.anchor_refusals.clear();
                Reload::Deleted
            }
            false => Reload::Missing,
        };
        self.count_anchors(source, result);
        if st.anchor_refusals.due(key, now) {
            tracing::warn!(%source,
                reason,
                "trust anchors source {result}; keeping the current anchors"
            );
        }
    }

    /// A source read a trust-anchor bundle.
    pub fn anchors_read(&self, source: Source, pem: &[u8]) {
        let mut st = self.lock();
        st.anchors_present = true;
        let digest = sha256(pem);
        if st.anchors.as_ref().is_some_and(|(d, _)| *d == digest) {
            self.count_anchors(source, Reload::Unchanged);
            return;
        }
        let now = self.clock.now();
        let anchors = match TrustAnchors::from_pem(pem, now) {
            Ok(a) => Arc::new(a),
            Err(e) => return self.reject_anchors(&mut st, source, digest, &e.to_string()),
        };
        // Prefer the newest issuer a source delivered, then the one in use.
        let candidates: Vec<IssuerMaterial> =
            st.seen.iter().chain(st.current.iter()).cloned().collect();
        if candidates.is_empty() {
            self.accept_anchors(&mut st, source, digest, anchors);
            return;
        }
        let mut accepted = false;
        for material in candidates {
            if let Ok(issuer) =
                Issuer::load_with(&material, &anchors, &self.probe, now, self.keys.as_ref())
            {
                if !std::mem::replace(&mut accepted, true) {
                    self.accept_anchors(&mut st, source, digest, anchors.clone());
                }
                if st.current.as_ref() != Some(&material) {
                    self.apply(&mut st, source, issuer, material.clone(), anchors.clone());
                    if st.current.as_ref() == Some(&material) {
                        return;
                    }
                    // Held by the interlock: the issuer in use serves the new anchors.
                    continue;
                }
                self.store.store(CaState {
                    issuer: Arc::new(issuer),
                    anchors,
                });
                return;
            }
        }
        if accepted {
            return;
        }
        if st.current.is_some() {
            self.reject_anchors(
                &mut st,
                source,
                digest,
                "the issuer in use does not chain to the new trust anchors",
            );
        } else {
            self.accept_anchors(&mut st, source, digest, anchors);
        }
    }

    fn accept_anchors(
        &self,
        st: &mut State,
        source: Source,
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
        tracing::info!(%source, anchors = anchors.certs().len(), earliest_expiry = %certmint_core::ca::fmt_time(anchors.earliest_expiry()), "trust anchors applied");
        self.count_anchors(source, Reload::Applied);
        if let Some(index) = &self.trust {
            let early = self.removed_early(st, index, &anchors);
            index.bundle_applied(
                anchors.certs().iter().map(|c| sha256(&c.der)).collect(),
                early,
            );
            let early = i64::try_from(index.removed_early_now()).unwrap_or(i64::MAX);
            self.metrics.anchors_removed_early.set(early);
        }
        st.anchor_refusals.clear();
        st.anchors = Some((digest, anchors));
    }

    /// Warns when the new bundle drops an anchor that leaves still chain to (an issuer
    /// under it signed less than a leaf lifetime ago), with the time it would be safe;
    /// returns those anchors.
    fn removed_early(
        &self,
        st: &State,
        index: &crate::trust::TrustIndex,
        anchors: &TrustAnchors,
    ) -> Vec<(crate::trust::index::AnchorInfo, SystemTime)> {
        let Some((_, before)) = &st.anchors else {
            return Vec::new();
        };
        let now = self.clock.now();
        let kept: std::collections::HashSet<_> =
            anchors.certs().iter().map(|c| sha256(&c.der)).collect();
        let mut early = Vec::new();
        for gone in before
            .certs()
            .iter()
            .filter(|c| !kept.contains(&sha256(&c.der)))
        {
            let fp = sha256(&gone.der);
            let in_use = self
                .store
                .load()
                .is_some_and(|s| s.issuer.anchor_fingerprint() == fp);
            let Some(safe) = index.safe_to_remove_at(&fp, in_use) else {
                continue;
            };
            if safe > now {
                let reason = format!(
                    "trust anchor {} was removed while leaves under it may still be in use; put it back in the bundle until {}",
                    gone.subject,
                    certmint_core::ca::fmt_time(safe)
                );
                tracing::warn!("{reason}");
                self.reporter.issuer_skipped(&reason);
                early.push((anchor_info(gone), safe));
            }
        }
        early
    }

    fn apply(
        &self,
        st: &mut State,
        source: Source,
        issuer: Issuer,
        material: IssuerMaterial,
        anchors: Arc<TrustAnchors>,
    ) {
        if let Some(hold) = self.held(&issuer) {
            if !st.forced {
                return self.hold_issuer(st, source, &issuer, &material, hold);
            }
            tracing::warn!(%source,
                subject = %issuer.cert().subject,
                untrusting = hold.untrusting,
                sample = %hold.sample.join(", "),
                "issuer activated by the override ({OVERRIDE_ANNOTATION}) although running workloads do not trust its anchor"
            );
            self.reporter.issuer_skipped(&format!(
                "override: issuer {} activated although {} running workload(s) do not trust its anchor ({})",
                issuer.cert().subject,
                hold.untrusting,
                hold.sample.join(", ")
            ));
            if let Some(hook) = &self.on_override {
                hook(&issuer, &hold);
            }
        }
        self.metrics.set_pending(None);
        self.metrics.issuer_pending_untrusting.set(0);
        if let Some(index) = &self.trust {
            index.set_pending(None);
            let before = self.store.load().map(|s| s.issuer.anchor_fingerprint());
            if let Some(old) = before.filter(|a| *a != issuer.anchor_fingerprint()) {
                index.retire(old);
            }
        }
        tracing::info!(%source,
            subject = %issuer.cert().subject,
            serial = %issuer.cert().serial_hex,
            not_after = %certmint_core::ca::fmt_time(issuer.chain_not_after()),
            "issuer applied"
        );
        Metrics::set_time(&self.metrics.issuer_expiry, issuer.chain_not_after());
        Metrics::set_time(&self.metrics.issuer_not_before, issuer.cert().not_before);
        Metrics::set_time(&self.metrics.issuer_last_reload, self.clock.now());
        self.count_issuer(source, Reload::Applied);
        st.issuer_refusals.clear();
        st.holds.clear();
        self.reporter.issuer_applied(&issuer);
        self.store.store(CaState {
            issuer: Arc::new(issuer),
            anchors,
        });
        st.current = Some(material);
    }

    /// Whether the interlock holds `issuer`: only an issuer under another anchor than the
    /// active one's is asked about (a new issuer under the same root changes nothing a
    /// workload trusts), and only while an issuer is active (at start there is nothing
    /// to keep signing with).
    fn held(&self, issuer: &Issuer) -> Option<Hold> {
        let gate = self.gate.as_ref()?;
        let active = self.store.load()?;
        let anchor = issuer.anchor_fingerprint();
        if active.issuer.anchor_fingerprint() == anchor {
            return None;
        }
        gate.hold(&anchor)
    }

    /// Keeps the active issuer; says why once per content (and per reminder interval).
    fn hold_issuer(
        &self,
        st: &mut State,
        source: Source,
        issuer: &Issuer,
        material: &IssuerMaterial,
        hold: Hold,
    ) {
        self.count_issuer(source, Reload::Held);
        self.metrics.set_pending(Some(match hold.is_unsynced() {
            true => crate::metrics::HoldReason::PodsUnknown,
            false => crate::metrics::HoldReason::UntrustedAnchor,
        }));
        if let Some(index) = &self.trust {
            index.set_pending(Some((
                issuer.cert().subject.clone(),
                issuer.anchor_fingerprint(),
            )));
        }
        self.metrics
            .issuer_pending_untrusting
            .set(i64::try_from(hold.untrusting).unwrap_or(i64::MAX));
        let key = certmint_core::digest::sha256_parts(&[
            &material.digest(),
            &hold.untrusting.to_be_bytes(),
            &[u8::from(hold.is_unsynced())],
        ]);
        if st.holds.due(key, self.clock.now()) {
            let reason = match hold.is_unsynced() {
                true => format!(
                    "new issuer {} under another trust anchor held until the running pods are known (pod list loading)",
                    issuer.cert().subject
                ),
                false => format!(
                    "new issuer {} held: {} running workload(s) do not trust its trust anchor ({}); it is activated when they are gone or restarted with a bundle that holds it",
                    issuer.cert().subject,
                    hold.untrusting,
                    hold.sample.join(", ")
                ),
            };
            tracing::warn!(%source, untrusting = hold.untrusting, "{reason}");
            self.reporter.issuer_skipped(&reason);
        }
    }

    /// Counts every refusal; logs (and records an Event) only when the content is new
    /// or a reminder is due.
    fn reject_issuer(&self, st: &mut State, source: Source, key: [u8; 32], reason: &str) {
        self.count_issuer(source, Reload::Rejected);
        if st.issuer_refusals.due(key, self.clock.now()) {
            tracing::warn!(%source,
                reason,
                "issuer update rejected; keeping the current issuer"
            );
            self.reporter.issuer_skipped(reason);
        }
    }

    fn reject_anchors(&self, st: &mut State, source: Source, key: [u8; 32], reason: &str) {
        self.count_anchors(source, Reload::Rejected);
        if st.anchor_refusals.due(key, self.clock.now()) {
            tracing::warn!(%source,
                reason,
                "trust anchors update rejected; keeping the current anchors"
            );
        }
    }

    fn count_issuer(&self, source: Source, result: Reload) {
        self.metrics
            .issuer_reloads
            .get_or_create(&ReloadLabels { source, result })
            .inc();
    }

    fn count_anchors(&self, source: Source, result: Reload) {
        self.metrics
            .anchor_reloads
            .get_or_create(&ReloadLabels { source, result })
            .inc();
    }
}

/// How the trust reports name an anchor.
fn anchor_info(c: &certmint_core::ca::cert::CertInfo) -> crate::trust::index::AnchorInfo {
    crate::trust::index::AnchorInfo {
        fingerprint: sha256(&c.der),
        subject: c.subject.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certmint_core::clock::FixedClock;
    use std::time::{SystemTime, UNIX_EPOCH};

    use certmint_core::ca::create::{CaMaterial, KeyType, generate_key, new_issuer, new_root};
    use certmint_core::identity::Naming;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const FILES: Source = Source::Files;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Records what would become Kubernetes Events.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);
    impl ReloadReporter for Recorder {
        fn issuer_applied(&self, issuer: &Issuer) {
            let mut events = self.0.lock().unwrap();
            events.push(format!("applied {}", issuer.cert().subject));
        }
        fn issuer_skipped(&self, reason: &str) {
            self.0.lock().unwrap().push(format!("skipped {reason}"));
        }
    }

    struct Fixture {
        reloader: Reloader,
        store: CaStore,
        metrics: Arc<Metrics>,
        events: Arc<Recorder>,
        clock: Arc<TestClock>,
    }

    /// A clock the test moves.
    struct TestClock(Mutex<SystemTime>);

    impl Clock for TestClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    impl Fixture {
        fn new() -> Self {
            Self::with(None)
        }

        fn with(gate: Option<Arc<dyn TrustGate>>) -> Self {
            let store = CaStore::new();
            let metrics = Arc::new(Metrics::default());
            let events = Arc::new(Recorder::default());
            let probe =
                certmint_core::ca::probe_names(&Naming::new("linkerd", "cluster.local").unwrap());
            let clock = Arc::new(TestClock(Mutex::new(now())));
            let reloader = Reloader::new(
                store.clone(),
                probe,
                metrics.clone(),
                clock.clone(),
                events.clone(),
                Reminders::default(),
            );
            let reloader = match gate {
                Some(g) => reloader.with_gate(g),
                None => reloader,
            };
            Self {
                reloader,
                store,
                metrics,
                events,
                clock,
            }
        }

        fn advance(&self, by: Duration) {
            *self.clock.0.lock().unwrap() += by;
        }

        fn issuer_count(&self, result: Reload) -> u64 {
            let labels = ReloadLabels {
                source: FILES,
                result,
            };
            self.metrics.issuer_reloads.get_or_create(&labels).get()
        }

        fn anchor_count(&self, result: Reload) -> u64 {
            let labels = ReloadLabels {
                source: FILES,
                result,
            };
            self.metrics.anchor_reloads.get_or_create(&labels).get()
        }

        /// The digest of the issuer in the store, and the fingerprints of the anchors it was
        /// checked against.
        fn in_use(&self) -> Option<([u8; 32], Vec<String>)> {
            let state = self.store.load()?;
            Some((state.issuer.digest(), fingerprints(&state.anchors)))
        }

        fn events(&self) -> Vec<String> {
            self.events.0.lock().unwrap().clone()
        }
    }

    fn root(name: &str) -> CaMaterial {
        let key = generate_key(KeyType::P256).unwrap();
        new_root(name, 3650 * DAY, key, now() - DAY).unwrap()
    }

    fn issuer_of(root: &CaMaterial, name: &str) -> IssuerMaterial {
        let key = generate_key(KeyType::P256).unwrap();
        let m = new_issuer(
            &root.cert_pem,
            &root.key_pem,
            name,
            365 * DAY,
            0,
            key,
            now() - DAY,
        )
        .unwrap();
        IssuerMaterial {
            cert_pem: m.cert_pem.into_bytes(),
            key_pem: m.key_pem.into_bytes(),
        }
    }

    /// The roots of a bundle, by SHA-256 fingerprint, in order.
    fn bundle(roots: &[&CaMaterial]) -> Vec<String> {
        let pem: String = roots.iter().map(|r| r.cert_pem.as_str()).collect();
        fingerprints(&TrustAnchors::from_pem(pem.as_bytes(), now()).unwrap())
    }

    fn fingerprints(anchors: &TrustAnchors) -> Vec<String> {
        let certs = anchors.certs().iter();
        certs.map(|c| c.fingerprint_sha256.clone()).collect()
    }

    #[test]
    fn applies_a_valid_issuer_and_counts_a_repeat_as_unchanged() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, good.clone());
        assert_eq!(f.in_use(), Some((good.digest(), bundle(&[&root]))));
        f.reloader.issuer_read(FILES, good.clone());
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        assert_eq!(f.issuer_count(Reload::Applied), 1);
        assert_eq!(f.issuer_count(Reload::Unchanged), 1);
        assert_eq!(f.anchor_count(Reload::Applied), 1);
        assert_eq!(f.anchor_count(Reload::Unchanged), 1);
        assert_eq!(f.events(), ["applied CN=issuer-1"]);
    }

    #[test]
    fn issuer_read_before_anchors_is_applied_when_they_arrive() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.issuer_read(FILES, good.clone());
        assert_eq!(f.in_use(), None);
        assert_eq!(f.issuer_count(Reload::Rejected), 0);
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        assert_eq!(f.in_use().map(|(d, _)| d), Some(good.digest()));
        assert_eq!(f.issuer_count(Reload::Applied), 1);
    }

    #[test]
    fn keeps_old_issuer_when_new_one_is_rejected() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, good.clone());
        let elsewhere = issuer_of(&self::root("other-root"), "issuer-2");
        let mismatched = IssuerMaterial {
            key_pem: elsewhere.key_pem.clone(),
            ..issuer_of(&root, "issuer-3")
        };
        for bad in [elsewhere, mismatched] {
            f.reloader.issuer_read(FILES, bad);
            assert_eq!(f.in_use().map(|(d, _)| d), Some(good.digest()));
        }
        f.reloader.issuer_invalid(FILES, "Secret has no tls.key");
        assert_eq!(f.in_use().map(|(d, _)| d), Some(good.digest()));
        assert_eq!(f.issuer_count(Reload::Rejected), 3);
        assert_eq!(f.issuer_count(Reload::Applied), 1);
        let events = f.events();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(
            events[1].starts_with("skipped issuer does not chain"),
            "{events:?}"
        );
        assert_eq!(
            events[2],
            "skipped issuer key does not match the issuer certificate"
        );
        assert_eq!(events[3], "skipped Secret has no tls.key");
    }

    #[test]
    fn keeps_old_anchors_when_the_issuer_does_not_chain_to_new_ones() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, good.clone());
        let other = self::root("other-root");
        f.reloader.anchors_read(FILES, other.cert_pem.as_bytes());
        assert_eq!(f.in_use(), Some((good.digest(), bundle(&[&root]))));
        assert_eq!(f.anchor_count(Reload::Rejected), 1);
        f.reloader.anchors_read(FILES, b"not pem");
        assert_eq!(f.anchor_count(Reload::Rejected), 2);
        // A bundle with both roots (a rotation) still verifies the issuer: applied.
        let both = [root.cert_pem.as_str(), other.cert_pem.as_str()].concat();
        f.reloader.anchors_read(FILES, both.as_bytes());
        assert_eq!(f.in_use(), Some((good.digest(), bundle(&[&root, &other]))));
        assert_eq!(f.anchor_count(Reload::Applied), 2);
        assert_eq!(f.issuer_count(Reload::Applied), 1);
    }

    #[test]
    fn new_anchors_activate_a_waiting_issuer_that_chains_to_them() {
        let f = Fixture::new();
        let (old_root, new_root) = (root("old-root"), root("new-root"));
        let old = issuer_of(&old_root, "issuer-old");
        let new = issuer_of(&new_root, "issuer-new");
        f.reloader.anchors_read(FILES, old_root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, old);
        f.reloader.issuer_read(FILES, new.clone());
        assert_eq!(f.issuer_count(Reload::Rejected), 1);
        f.reloader.anchors_read(FILES, new_root.cert_pem.as_bytes());
        assert_eq!(f.in_use(), Some((new.digest(), bundle(&[&new_root]))));
        assert_eq!(f.issuer_count(Reload::Applied), 2);
    }

    #[test]
    fn counts_deleted_once_then_missing_and_keeps_the_issuer() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, good.clone());
        f.reloader.issuer_missing(FILES, "Secret not found");
        f.reloader.issuer_missing(FILES, "Secret not found");
        f.reloader.issuer_missing(FILES, "Secret not found");
        assert_eq!(f.issuer_count(Reload::Deleted), 1);
        assert_eq!(f.issuer_count(Reload::Missing), 2);
        assert_eq!(f.in_use().map(|(d, _)| d), Some(good.digest()));
        assert_eq!(
            f.events().last().unwrap(),
            "skipped issuer source is gone (Secret not found); keeping the last good issuer"
        );
        // Back again: the same content is unchanged, and a later loss is a new deletion.
        f.reloader.issuer_read(FILES, good);
        f.reloader.issuer_missing(FILES, "Secret not found");
        assert_eq!(f.issuer_count(Reload::Unchanged), 1);
        assert_eq!(f.issuer_count(Reload::Deleted), 2);
    }

    #[test]
    fn never_present_is_missing_not_deleted() {
        let f = Fixture::new();
        f.reloader.issuer_missing(FILES, "no such file");
        f.reloader.anchors_missing(FILES, "no such file");
        assert_eq!(f.issuer_count(Reload::Missing), 1);
        assert_eq!(f.issuer_count(Reload::Deleted), 0);
        assert_eq!(f.anchor_count(Reload::Missing), 1);
        assert_eq!(f.anchor_count(Reload::Deleted), 0);
        assert!(f.events().is_empty());
    }

    #[test]
    fn anchors_deleted_once_then_missing_and_kept() {
        let f = Fixture::new();
        let root = root("root");
        let good = issuer_of(&root, "issuer-1");
        f.reloader.anchors_read(FILES, root.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, good.clone());
        f.reloader.anchors_missing(FILES, "ConfigMap not found");
        f.reloader.anchors_missing(FILES, "ConfigMap not found");
        assert_eq!(f.anchor_count(Reload::Deleted), 1);
        assert_eq!(f.anchor_count(Reload::Missing), 1);
        assert_eq!(f.in_use(), Some((good.digest(), bundle(&[&root]))));
    }

    /// Holds issuers under the anchors it lists, as running workloads that trust only
    /// other anchors would.
    #[derive(Default)]
    struct Gate(Mutex<Vec<certmint_core::trust::Fingerprint>>);

    impl TrustGate for Gate {
        fn hold(&self, anchor: &certmint_core::trust::Fingerprint) -> Option<Hold> {
            self.0.lock().unwrap().contains(anchor).then(|| Hold {
                untrusting: 1,
                sample: vec!["shop/web-old".into()],
            })
        }
    }

    fn fingerprint(root: &CaMaterial) -> certmint_core::trust::Fingerprint {
        let der =
            &certmint_core::ca::cert::parse_pem_chain(root.cert_pem.as_bytes()).unwrap()[0].der;
        sha256(der)
    }

    #[test]
    fn an_issuer_under_a_new_root_waits_until_no_running_workload_refuses_it() {
        let gate = Arc::new(Gate::default());
        let f = Fixture::with(Some(gate.clone()));
        let (old, new) = (root("old"), root("new"));
        let a = issuer_of(&old, "a");
        f.reloader.anchors_read(FILES, old.cert_pem.as_bytes());
        f.reloader.issuer_read(FILES, a.clone());
        gate.0.lock().unwrap().push(fingerprint(&new));

        // The new issuer arrives with the overlap bundle: the bundle is served at once
        // (with the issuer in use), the issuer under the new root waits.
        let b = issuer_of(&new, "b");
        f.reloader.issuer_read(FILES, b.clone());
        let overlap = format!("{}{}", old.cert_pem, new.cert_pem);
        f.reloader.anchors_read(FILES, overlap.as_bytes());
        assert_eq!(f.in_use(), Some((a.digest(), bundle(&[&old, &new]))));
        assert_eq!(f.issuer_count(Reload::Held), 1);
        assert_eq!(f.metrics.pending(), 1);
        let events = f.events();
        let held = events.last().unwrap();
        assert!(held.contains("held: 1 running workload(s)"), "{held}");
        assert!(held.contains("shop/web-old"), "{held}");

        // Re-reads while held say it once, past the reload interval too; a reminder
        // comes after ten minutes.
        f.reloader.issuer_read(FILES, b.clone());
        f.advance(Duration::from_secs(120));
        f.reloader.issuer_read(FILES, b.clone());
        assert_eq!(f.events().len(), events.len());
        f.advance(Duration::from_secs(600));
        f.reloader.issuer_read(FILES, b.clone());
        assert_eq!(f.events().len(), events.len() + 1);

        // The last such workload is replaced: activated without a new read.
        gate.0.lock().unwrap().clear();
        f.reloader.trust_changed();
        assert_eq!(f.in_use().unwrap().0, b.digest());
        assert_eq!(f.metrics.pending(), 0);

        // Another issuer under the same root is not the interlock's business.
        gate.0.lock().unwrap().push(fingerprint(&new));
        let c = issuer_of(&new, "c");
        f.reloader.issuer_read(FILES, c.clone());
        assert_eq!(f.in_use().unwrap().0, c.digest());
    }

    #[test]
    fn the_override_activates_a_held_issuer_and_tells_the_hook() {
        let gate = Arc::new(Gate::default());
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let f = Fixture::with(Some(gate.clone()));
        let hook_heard = heard.clone();
        let reloader = f.reloader.with_override_hook(Arc::new(move |issuer, hold| {
            let line = format!("{} {}", issuer.cert().subject, hold.untrusting);
            hook_heard.lock().unwrap().push(line);
        }));
        let (old, new) = (root("old"), root("new"));
        reloader.anchors_read(
            FILES,
            format!("{}{}", old.cert_pem, new.cert_pem).as_bytes(),
        );
        reloader.issuer_read(FILES, issuer_of(&old, "a"));
        gate.0.lock().unwrap().push(fingerprint(&new));
        let b = issuer_of(&new, "b");
        reloader.issuer_read(FILES, b.clone());
        assert_ne!(f.store.load().unwrap().issuer.digest(), b.digest(), "held");
        reloader.issuer_override(true);
        reloader.issuer_read(FILES, b.clone());
        assert_eq!(f.store.load().unwrap().issuer.digest(), b.digest());
        assert_eq!(*heard.lock().unwrap(), ["CN=b 1"]);
        let events = f.events.0.lock().unwrap().clone();
        assert!(
            events
                .iter()
                .any(|e| e.contains("override: issuer CN=b activated"))
        );
    }

    #[test]
    fn removing_an_anchor_that_live_leaves_chain_to_is_warned_with_the_safe_time() {
        let index = Arc::new(crate::trust::TrustIndex::new(
            DAY,
            Arc::new(FixedClock(now())),
            false,
        ));
        index.replace(&[]);
        let mut f = Fixture::new();
        f.reloader = f.reloader.with_trust(index.clone());
        let (old, new) = (root("old"), root("new"));
        f.reloader.anchors_read(
            FILES,
            format!("{}{}", old.cert_pem, new.cert_pem).as_bytes(),
        );
        f.reloader.issuer_read(FILES, issuer_of(&old, "a"));
        f.reloader.issuer_read(FILES, issuer_of(&new, "b"));
        // Leaves from issuer a live for one more day: dropping the old root now is early.
        f.reloader.anchors_read(FILES, new.cert_pem.as_bytes());
        assert_eq!(f.metrics.anchors_removed_early.get(), 1);
        let safe = certmint_core::ca::fmt_time(now() + DAY);
        let events = f.events();
        let warned = events.last().unwrap();
        assert!(
            warned.contains("CN=old") && warned.contains(&safe),
            "{warned}"
        );
        assert_eq!(
            index.safe_to_remove_at(&fingerprint(&old), false),
            Some(now() + DAY)
        );
        assert_eq!(index.safe_to_remove_at(&fingerprint(&new), true), None);
        let report = index.report(f.store.load().as_deref());
        assert_eq!(report.removed_early.len(), 1);
        assert_eq!(
            (
                report.removed_early[0].subject.as_str(),
                report.removed_early[0].safe_from.as_str()
            ),
            ("CN=old", safe.as_str())
        );
        // Put back: no longer missing, and retiring until the same time.
        f.reloader.anchors_read(
            FILES,
            format!("{}{}", old.cert_pem, new.cert_pem).as_bytes(),
        );
        assert_eq!(f.metrics.anchors_removed_early.get(), 0);
        let report = index.report(f.store.load().as_deref());
        assert!(report.removed_early.is_empty());
        let roles: Vec<_> = report
            .anchors
            .iter()
            .map(|a| (a.issuer.as_deref(), a.safe_to_remove_at.clone()))
            .collect();
        assert_eq!(roles, [(None, Some(safe.clone())), (Some("active"), None)]);
        assert_eq!(report.retiring().count(), 1);
    }
}
