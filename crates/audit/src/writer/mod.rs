//! The audit writer: a dedicated thread ([`thread`]) fed by a bounded queue, writing to
//! every sink ([`sinks`]). This module is the handle Certify uses: it serialises its
//! record's body on its own task, hands it over and waits until the record's batch has been
//! written to every sink (handed to the OS), so a certificate never leaves before its
//! record. A record that never reached the writer (queue full for the whole wait) is
//! counted, and the count goes into the next `gap` record.

mod sinks;
#[cfg(test)]
mod tests;
mod thread;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::body::EncodedBody;
use super::chain::Chain;
use super::checkpoint::{AuditSigner, KeyError};
use super::config::{AuditConfig, OnFailure};
use super::sink::file::FileSink;
use super::sink::{Sink, StdoutSink};
use crate::metrics::Metrics;
use sinks::Sinks;
use thread::Writer;

/// After Certify's wait ran out, how long it still waits for a record the writer had
/// already taken as delivered (one write).
const GRACE: Duration = Duration::from_secs(1);
/// The code a caller gets when its certificate's record was not written in time.
const UNDELIVERED: &str = "UNAVAILABLE";

/// Why the audit trail could not take a record, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit file {path}: {source}; check audit.file.path and its volume")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot start the audit writer thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("audit sink write failed")]
    Sink,
    #[error("audit writer is not accepting records (stopped or overloaded)")]
    Unavailable,
}

/// The writer's answer to one record: whether every sink took it, and the record's buffer
/// back, so that it is freed on the Certify side. (glibc's allocator makes a free on
/// another thread than the allocating one contend for that thread's arena: with every
/// record's strings freed on the writer thread, that cost more than the record itself.)
struct Done {
    written: bool,
    _buf: Vec<u8>,
}

type Ack = oneshot::Sender<Done>;

/// Who decides whether an issued certificate counts as delivered: the writer when it seals
/// the record in time (`TAKEN`), or Certify when it stopped waiting first (`ABANDONED`,
/// then the record says `undelivered`).
type Claim = Arc<std::sync::atomic::AtomicU8>;
const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// A record waiting in a batch.
struct Pending {
    body: EncodedBody,
    ack: Option<Ack>,
    claim: Option<Claim>,
}

enum Msg {
    Record(Pending),
    Close(oneshot::Sender<()>),
}

/// What the handle and the writer thread both see.
struct Shared {
    /// False while the last write failed (until a later write or probe succeeds).
    healthy: AtomicBool,
    /// Test hook: every sink write fails.
    fail: AtomicBool,
    /// Records that never reached the writer (the queue stayed full for the caller's whole
    /// wait): counted in the next `gap` record.
    dropped: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            fail: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }
}

/// The handle Certify uses.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    policy: OnFailure,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    unrecorded: Arc<certmint_core::logsum::Repeated>,
}

impl AuditLog {
    /// Opens the sinks and the key, writes the chain's `start` record, starts the thread.
    /// Call within a Tokio runtime (the error summary runs on it).
    pub fn start(cfg: &AuditConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, AuditError> {
        Self::start_with(cfg, metrics, Vec::new())
    }

    /// [`start`](Self::start) with `extra` sinks after the configured ones (tests: sinks
    /// that fail on demand).
    #[doc(hidden)]
    pub fn start_with(
        cfg: &AuditConfig,
        metrics: Arc<Metrics>,
        extra: Vec<Box<dyn Sink>>,
    ) -> Result<Arc<Self>, AuditError> {
        let signer = match &cfg.checkpoint.key {
            Some(path) => Some(AuditSigner::from_file(path)?),
            None => None,
        };
        let replica = cfg.replica_name();
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut last = None;
        if let Some(f) = &cfg.file {
            let f = f.for_replica(&replica);
            let (sink, tail) = FileSink::open(&f).map_err(|source| AuditError::Open {
                path: f.path.display().to_string(),
                source,
            })?;
            sinks.push(Box::new(sink));
            last = tail;
        }
        if cfg.stdout {
            sinks.push(Box::new(StdoutSink));
        }
        sinks.extend(extra);
        let after = last
            .as_deref()
            .and_then(|l| serde_json::from_slice::<super::record::Record>(l).ok())
            .map(|r| r.chain);
        let chain = Chain::new(&replica, last.as_deref());
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::channel(cfg.queue);
        let sinks = Sinks::new(sinks, cfg.on_failure, shared.clone());
        let writer = Writer::new(cfg, sinks, chain, signer, shared.clone(), metrics.clone());
        tracing::info!(
            replica,
            chain = writer.chain_id(),
            signed = writer.signed(),
            on_failure = ?cfg.on_failure,
            "audit trail started"
        );
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run_thread(rx, after))
            .map_err(AuditError::Thread)?;
        let unrecorded = certmint_core::logsum::Repeated::new(
            "certificates issued without an audit record",
            tracing::Level::ERROR,
            certmint_core::logsum::INTERVAL,
        );
        unrecorded.spawn_flusher();
        Ok(Arc::new(Self {
            tx,
            policy: cfg.on_failure,
            shared,
            metrics,
            unrecorded,
        }))
    }

    pub fn policy(&self) -> OnFailure {
        self.policy
    }

    /// False while the last write failed (until a later write or probe succeeds).
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Hands a record's `body` to the writer and waits (at most `wait`) until it is
    /// written. The body was serialised on the calling task
    /// ([`CertifyView::encode`](super::record::CertifyView::encode)); the writer thread
    /// only splices it under the chain fields.
    pub async fn record(&self, body: EncodedBody, wait: Duration) -> Result<(), AuditError> {
        self.hand(body, None, wait).await
    }

    /// [`record`](Self::record) for an issued certificate. Under `refuse`, when the wait
    /// runs out before the writer took the record, the caller is answered UNAVAILABLE and
    /// the record, written later, says so (`"undelivered":"UNAVAILABLE"`, serial kept).
    pub async fn record_issued(&self, body: EncodedBody, wait: Duration) -> Result<(), AuditError> {
        let claim = (self.policy == OnFailure::Refuse).then(|| Claim::new(PENDING.into()));
        self.hand(body, claim, wait).await
    }

    async fn hand(
        &self,
        body: EncodedBody,
        claim: Option<Claim>,
        wait: Duration,
    ) -> Result<(), AuditError> {
        let deadline = tokio::time::Instant::now() + wait;
        let (ack, mut written) = oneshot::channel();
        let pending = Pending {
            body,
            ack: Some(ack),
            claim: claim.clone(),
        };
        let sent = tokio::time::timeout_at(deadline, self.tx.send(Msg::Record(pending))).await;
        let Ok(Ok(())) = sent else {
            self.shared.dropped.fetch_add(1, Ordering::AcqRel);
            return Err(AuditError::Unavailable);
        };
        let answer = match tokio::time::timeout_at(deadline, &mut written).await {
            Ok(answer) => answer,
            Err(_) => {
                let abandoned = claim.as_ref().is_none_or(|c| {
                    c.compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                });
                if abandoned {
                    return Err(AuditError::Unavailable);
                }
                // The writer already sealed it as delivered: its write is under way.
                match tokio::time::timeout(GRACE, written).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(AuditError::Unavailable),
                }
            }
        };
        match answer {
            Ok(Done { written: true, .. }) => Ok(()),
            Ok(Done { written: false, .. }) => Err(AuditError::Sink),
            Err(_) => Err(AuditError::Unavailable),
        }
    }

    /// Under `continue`: a certificate went out without its record. Counted and logged
    /// (one error line per interval).
    pub fn issued_unrecorded(&self, err: &AuditError) {
        self.metrics.audit_unrecorded.inc();
        if self.unrecorded.record(&err.to_string()) {
            tracing::error!(reason = %err, "certificate issued without an audit record (audit.on_failure: continue)");
        }
    }

    /// Writes what is queued, a last checkpoint, and stops the writer.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Test hook: make every sink write fail (as a full disk would) until switched off.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, on: bool) {
        self.shared.fail.store(on, Ordering::Release);
    }
}
