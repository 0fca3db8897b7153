//! The signer loop: watches the PodCertificateRequests for certmint's signer name, and
//! for each undecided one judges it against the pod watch and the service account and
//! node it names, signs, and writes the decision once. Replicas run it side by side: the
//! status write carries the resourceVersion the decision was made on, so the first writer
//! wins and the others see it decided.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::Resource;
use k8s_openapi::api::certificates::v1::PodCertificateRequest;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::audit::DecisionRecord;
use super::decide::{self, Refusal, Verdict};
use super::issue::{self, Signed};
use super::metrics::Outcome;
use super::owners::{Checked, Owners};
pub use super::parts::SignerParts;
use super::request::{self, Request};
use super::seen::Decided;
use super::status::{self, Decision, Written};
use super::version::{self, Version};
use super::versioned::{VersionedApi, typed};

/// How often a request waiting for its pod looks again.
const POD_POLL: Duration = Duration::from_millis(250);
/// The longest pause between attempts at a request whose write failed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running signer.
pub struct Signer {
    /// The `certificates.k8s.io` version, chosen when the signer starts.
    version: OnceLock<Version>,
    parts: SignerParts,
    budget: DefaultDirectRateLimiter,
    workers: Semaphore,
    /// The service accounts and nodes the requests name, as read from the API server.
    owners: Owners,
    /// The latest object of every request a task is handling.
    pending: Mutex<HashMap<String, PodCertificateRequest>>,
    /// UIDs of requests seen decided (here or elsewhere).
    decided: Mutex<Decided>,
    /// This replica's seed for the claim stagger.
    seed: u64,
}

impl Signer {
    pub fn new(parts: SignerParts) -> Arc<Self> {
        let c = &parts.config;
        let qps = NonZeroU32::new(c.write_qps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(c.write_burst).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            version: OnceLock::new(),
            budget: RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)),
            workers: Semaphore::new(c.workers.max(1)),
            owners: Owners::new(parts.client.clone(), parts.metrics.clone()),
            pending: Mutex::new(HashMap::new()),
            decided: Mutex::new(Decided::default()),
            seed: rand::random(),
            parts,
        })
    }

    /// Watches and signs until shutdown; survives watch errors and re-lists.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let client = &self.parts.client;
        let setting = self.parts.config.api_version;
        let resource = PodCertificateRequest::URL_PATH_SEGMENT;
        let Some(version) =
            version::choose_until_found(client, setting, resource, &mut shutdown).await
        else {
            return;
        };
        let version = *self.version.get_or_init(|| version);
        let api = VersionedApi::<PodCertificateRequest>::all(client.clone(), version);
        let fields = format!("spec.signerName={}", self.parts.config.signer_name);
        let config = watcher::Config::default().fields(&fields);
        let stream = watcher::watcher(api.dynamic().clone(), config).default_backoff();
        tokio::pin!(stream);
        let mut tasks = JoinSet::new();
        tracing::info!(signer = %self.parts.config.signer_name, "pod-certificate signer started");
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                event = stream.next() => match event {
                    None => break,
                    Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                        if let Some(p) = read(p) {
                            self.offer(p, &mut tasks, &shutdown);
                        }
                    }
                    Some(Ok(Event::Delete(p))) => {
                        if let Some(p) = read(p) {
                            self.forget_object(&p);
                        }
                    }
                    Some(Ok(Event::Init | Event::InitDone)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "PodCertificateRequest watch failed; retrying"),
                },
            }
        }
        tasks.abort_all();
    }

    /// Starts a task for an undecided request, or hands a newer object to its task.
    fn offer(
        self: &Arc<Self>,
        pcr: PodCertificateRequest,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        if pcr.spec.signer_name != self.parts.config.signer_name {
            return;
        }
        let Some(key) = request::key_of(&pcr) else {
            return;
        };
        let decided = self.note_decided(&pcr);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = !pending.contains_key(&key);
        if fresh && decided {
            return;
        }
        // A task already on it gets the newer object (decided elsewhere: it stops).
        pending.insert(key.clone(), pcr);
        drop(pending);
        if fresh {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { me.handle(key, shutdown).await });
        }
    }

    /// Whether `pcr` is decided, now or as seen before (an undecided view of a request
    /// seen decided is stale); remembers it when it is.
    fn note_decided(&self, pcr: &PodCertificateRequest) -> bool {
        let uid = pcr.metadata.uid.as_deref().unwrap_or_default();
        let mut decided = self.decided.lock().unwrap_or_else(|e| e.into_inner());
        if request::decided(pcr).is_some() {
            decided.insert(uid);
            return true;
        }
        decided.contains(uid)
    }

    fn forget_object(&self, pcr: &PodCertificateRequest) {
        if let Some(key) = request::key_of(pcr) {
            self.forget(&key);
        }
    }

    fn forget(&self, key: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.remove(key);
    }

    fn latest(&self, key: &str) -> Option<PodCertificateRequest> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.get(key).cloned()
    }

    /// Handles one request until it is decided (here or elsewhere) or deleted.
    async fn handle(self: Arc<Self>, key: String, mut shutdown: watch::Receiver<bool>) {
        let seen = Instant::now();
        let uid = self
            .latest(&key)
            .and_then(|p| p.metadata.uid)
            .unwrap_or_default();
        let stagger = stagger(self.seed, &uid, self.parts.config.claim_stagger);
        tokio::select! {
            _ = shutdown.changed() => return self.forget(&key),
            _ = tokio::time::sleep(stagger) => {}
        }
        let mut backoff = Duration::from_secs(1);
        let mut waiting = false;
        while let Some(pcr) = self.latest(&key) {
            if self.note_decided(&pcr) {
                self.parts.metrics.outcome(Outcome::DecidedElsewhere);
                break;
            }
            let waited_out = seen.elapsed() >= self.parts.config.pod_wait;
            let pause = match self.attempt(pcr, waited_out).await {
                Step::Done => break,
                Step::Wait => POD_POLL,
                Step::Retry => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff / 2
                }
            };
            if !waiting && pause == POD_POLL {
                waiting = true;
                self.parts.metrics.waiting_for_pod.inc();
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if waiting {
            self.parts.metrics.waiting_for_pod.dec();
        }
        self.forget(&key);
    }

    /// One try at a request.
    async fn attempt(&self, pcr: PodCertificateRequest, waited_out: bool) -> Step {
        let req = match Request::read(&pcr) {
            Ok(req) => req,
            Err(why) => {
                tracing::warn!(request = ?request::key_of(&pcr), reason = why, "unreadable PodCertificateRequest ignored");
                return Step::Done;
            }
        };
        let verdict = match decide::judge(&req, &*self.parts.pods, self.parts.lifetime, waited_out)
        {
            Verdict::Wait => return Step::Wait,
            sign @ Verdict::Sign { .. } => match self.owners.check(&req).await {
                Checked::Match => sign,
                Checked::Deny(r) => Verdict::Deny(r),
                // The API server did not answer: like a missing issuer, try again later.
                Checked::Unknown => return Step::Retry,
            },
            deny => deny,
        };
        let Ok(_worker) = self.workers.acquire().await else {
            return Step::Done;
        };
        let signed = match verdict {
            Verdict::Wait => return Step::Wait,
            Verdict::Deny(r) => Signed::refused(Decision::Denied(r)),
            Verdict::Sign { account, span } => match issue::sign(&self.parts, &req, &account, span)
            {
                Some(signed) => signed,
                None => return Step::Retry,
            },
        };
        self.decide(pcr, &req, signed).await
    }

    /// Records and writes a decision; the first writer wins.
    async fn decide(&self, pcr: PodCertificateRequest, req: &Request, signed: Signed) -> Step {
        let Signed {
            decision,
            identity,
            cert,
        } = signed;
        let body = || DecisionRecord::new(req, &identity, &decision, cert.as_ref());
        if cert.is_some() && !self.audit_issued(body()).await {
            return Step::Retry;
        }
        let metrics = &self.parts.metrics;
        let now = self.parts.clock.now();
        let result = status::write(
            &self.api_for(req),
            pcr,
            &decision,
            now,
            || self.budget.until_ready(),
            || {
                metrics.status_conflicts.inc();
            },
        )
        .await;
        if matches!(result, Ok(Written::Ours | Written::Theirs(_))) {
            let uid = req.uid.as_str();
            let mut decided = self.decided.lock().unwrap_or_else(|e| e.into_inner());
            decided.insert(uid);
        }
        match result {
            Ok(Written::Ours) => {
                self.finish(req, &decision);
                if cert.is_none() {
                    self.audit_plain(body()).await;
                }
                Step::Done
            }
            Ok(Written::Theirs(by)) => {
                metrics.outcome(Outcome::DecidedElsewhere);
                if cert.is_some() {
                    // The certificate signed here was recorded as issued; say it never left.
                    let mut lost = body();
                    lost.undelivered = Some("ABORTED");
                    self.audit_plain(lost).await;
                }
                tracing::debug!(request = %req.key(), by = %by, "decided by another replica");
                Step::Done
            }
            Ok(Written::Deleted) => {
                metrics.outcome(Outcome::Deleted);
                Step::Done
            }
            Err(e) => {
                metrics.status_write_errors.inc();
                tracing::warn!(request = %req.key(), error = %e, "cannot write PodCertificateRequest status; will retry");
                Step::Retry
            }
        }
    }

    fn api_for(&self, req: &Request) -> VersionedApi<PodCertificateRequest> {
        let version = self.version.get().copied().unwrap_or(Version::V1);
        VersionedApi::namespaced(self.parts.client.clone(), &req.namespace, version)
    }

    fn finish(&self, req: &Request, decision: &Decision) {
        let outcome = match decision {
            Decision::Issued(c) => {
                tracing::debug!(request = %req.key(), not_after = %certmint_core::ca::fmt_time(c.not_after), "pod certificate issued");
                Outcome::Issued
            }
            Decision::Denied(r) => {
                log_refusal(req, "Denied", r);
                Outcome::Denied
            }
            Decision::Failed(r) => {
                log_refusal(req, "Failed", r);
                Outcome::Failed
            }
        };
        self.parts.metrics.outcome(outcome);
    }

    /// Records an issued certificate before it is written; false when the record could not
    /// be written and `audit.on_failure` is `refuse` (the request is tried again later).
    async fn audit_issued(&self, record: DecisionRecord<'_>) -> bool {
        match &self.parts.audit {
            Some(audit) => audit.issued(record).await,
            None => true,
        }
    }

    async fn audit_plain(&self, record: DecisionRecord<'_>) {
        if let Some(audit) = &self.parts.audit {
            audit.other(record).await;
        }
    }
}

/// The claim stagger of `uid` on this replica: uniform in [0, `max`), independent across
/// replicas (their seeds differ).
fn stagger(seed: u64, uid: &str, max: Duration) -> Duration {
    use sha2::Digest;
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let digest = sha2::Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(uid.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_be_bytes(first) % max_ms)
}

/// A watched object as the `v1` type; None (logged) when it does not read as one.
fn read(object: DynamicObject) -> Option<PodCertificateRequest> {
    let name = object.metadata.name.clone().unwrap_or_default();
    match typed(object) {
        Ok(pcr) => Some(pcr),
        Err(_) => {
            // The serde error may quote the object's fields (the CSR among them): not logged.
            tracing::warn!(request = %name, "PodCertificateRequest does not read as v1; ignored");
            None
        }
    }
}

/// What the loop does after an attempt.
enum Step {
    Done,
    Wait,
    Retry,
}

fn log_refusal(req: &Request, condition: &str, r: &Refusal) {
    tracing::info!(request = %req.key(), pod = %req.pod_name, node = %req.node_name, condition, reason = r.reason, message = %r.message, "pod certificate refused");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stagger_is_below_its_bound_stable_per_replica_and_differs_across_replicas() {
        let max = Duration::from_millis(300);
        let a: Vec<_> = (0..50)
            .map(|i| stagger(1, &format!("uid-{i}"), max))
            .collect();
        assert!(a.iter().all(|d| *d < max));
        assert_eq!(a[7], stagger(1, "uid-7", max));
        let b: Vec<_> = (0..50)
            .map(|i| stagger(2, &format!("uid-{i}"), max))
            .collect();
        assert_ne!(a, b);
        assert_eq!(stagger(1, "uid-1", Duration::ZERO), Duration::ZERO);
    }
}
