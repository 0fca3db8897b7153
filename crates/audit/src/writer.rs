//! The audit writer: a dedicated thread fed by a bounded queue. Certify serialises its
//! record's body on its own task, hands it over and waits until the record's batch has been
//! written to every sink (handed to the OS), so a certificate never leaves before its
//! record. Batches form under load; every batch is written at once, so nothing waits longer
//! than one write. Checkpoints are added every `checkpoint.records` records or
//! `checkpoint.interval`, and a last one on close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::body::EncodedBody;
use super::chain::Chain;
use super::checkpoint::{AuditSigner, KeyError, checkpoint};
use super::config::{AuditConfig, OnFailure};
use super::record::timestamp;
use super::sink::file::FileSink;
use super::sink::{Sink, StdoutSink};
use crate::metrics::{Metrics, RecordResult, ResultLabel};

/// Records written in one batch at most.
const MAX_BATCH: usize = 512;
/// The batch buffer is kept between batches up to this size.
const KEEP_BUF: usize = 1 << 20;
/// How often the writer looks at checkpoints due and retries a failed sink.
const TICK: Duration = Duration::from_millis(100);
/// While a sink fails, a probe checkpoint is tried this often.
const PROBE: Duration = Duration::from_secs(1);
/// Under load (the last batch was written less than `BUSY` ago) the writer sleeps `LINGER`
/// and then takes what came meanwhile, so that one write carries many; when idle it writes
/// a record at once. (This thread only writes audit records: its sleep stalls nothing else.)
const BUSY: Duration = Duration::from_millis(5);
const LINGER: Duration = Duration::from_millis(1);

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

enum Msg {
    Record(EncodedBody, Ack),
    Close(oneshot::Sender<()>),
}

/// The handle Certify uses.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    policy: OnFailure,
    healthy: Arc<AtomicBool>,
    fail: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    unrecorded: Arc<certmint_core::logsum::Repeated>,
}

impl AuditLog {
    /// Opens the sinks and the key, writes the chain's `start` record, starts the thread.
    /// Call within a Tokio runtime (the error summary runs on it).
    pub fn start(cfg: &AuditConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, AuditError> {
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
        let after = last
            .as_deref()
            .and_then(|l| serde_json::from_slice::<super::record::Record>(l).ok())
            .map(|r| r.chain);
        let chain = Chain::new(&replica, last.as_deref());
        let healthy = Arc::new(AtomicBool::new(true));
        let fail = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(cfg.queue);
        let writer = Writer {
            sinks,
            chain,
            signer,
            every: cfg.checkpoint.records,
            interval: cfg.checkpoint.interval,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_write: Instant::now(),
            last_probe: Instant::now(),
            pending: Vec::new(),
            buf: Vec::new(),
            healthy: healthy.clone(),
            fail: fail.clone(),
            metrics: metrics.clone(),
        };
        tracing::info!(
            replica,
            chain = writer.chain.id(),
            signed = writer.signer.is_some(),
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
            healthy,
            fail,
            metrics,
            unrecorded,
        }))
    }

    pub fn policy(&self) -> OnFailure {
        self.policy
    }

    /// False while the last write failed (until a later write or probe succeeds).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Hands a record's `body` to the writer and waits (at most `wait`) until it is
    /// written. The body was serialised on the calling task
    /// ([`CertifyView::encode`](super::record::CertifyView::encode)); the writer thread
    /// only splices it under the chain fields.
    pub async fn record(&self, body: EncodedBody, wait: Duration) -> Result<(), AuditError> {
        let (ack, written) = oneshot::channel();
        let handed = async {
            self.tx
                .send(Msg::Record(body, ack))
                .await
                .map_err(|_| AuditError::Unavailable)?;
            match written.await {
                Ok(Done { written: true, .. }) => Ok(()),
                Ok(Done { written: false, .. }) => Err(AuditError::Sink),
                Err(_) => Err(AuditError::Unavailable),
            }
        };
        tokio::time::timeout(wait, handed)
            .await
            .unwrap_or(Err(AuditError::Unavailable))
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
        self.fail.store(on, Ordering::Release);
    }
}

struct Writer {
    sinks: Vec<Box<dyn Sink>>,
    chain: Chain,
    signer: Option<AuditSigner>,
    every: u64,
    interval: Duration,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_write: Instant,
    last_probe: Instant,
    /// The batch being formed: bodies and who waits for them (none for the `start`).
    pending: Vec<(EncodedBody, Option<Ack>)>,
    /// The batch's lines, reused from batch to batch.
    buf: Vec<u8>,
    healthy: Arc<AtomicBool>,
    fail: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run_thread(self, rx: mpsc::Receiver<Msg>, after: Option<String>) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt.block_on(self.run(rx, after)),
            Err(e) => tracing::error!(error = %e, "audit writer cannot start its runtime"),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, after: Option<String>) {
        let start = EncodedBody::new(&Chain::start_body(after));
        self.pending.push((start, None));
        self.write_pending();
        self.since_checkpoint = 0;
        let mut tick = tokio::time::interval(TICK);
        loop {
            // Under load (the last batch was written less than `BUSY` ago) gather records
            // for `LINGER` without waiting on the queue: then Certify calls do not wake
            // this thread, and one write carries many records.
            if self.last_write.elapsed() < BUSY {
                std::thread::sleep(LINGER);
                self.housekeeping();
                match rx.try_recv() {
                    Ok(msg) => match self.batch(msg, &mut rx) {
                        Some(done) => return self.close(done),
                        None => continue,
                    },
                    Err(mpsc::error::TryRecvError::Empty) => {}
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if let Some(done) = self.batch(msg, &mut rx) {
                        return self.close(done);
                    }
                }
                _ = tick.tick() => self.housekeeping(),
            }
        }
        self.finish();
    }

    /// Writes a checkpoint when one is due by time, or a probe while the sinks fail.
    fn housekeeping(&mut self) {
        let failing = !self.healthy.load(Ordering::Acquire);
        let due = self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval;
        if (failing && self.last_probe.elapsed() >= PROBE) || (!failing && due) {
            self.last_probe = Instant::now();
            self.write_checkpoint(false);
        }
    }

    fn close(&mut self, done: oneshot::Sender<()>) {
        self.finish();
        let _ = done.send(());
    }

    /// Writes `first` and whatever else is queued now. Returns the close request, if
    /// one was met (everything before it is written first).
    fn batch(&mut self, first: Msg, rx: &mut mpsc::Receiver<Msg>) -> Option<oneshot::Sender<()>> {
        let mut close = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(body, ack) => self.pending.push((body, Some(ack))),
                Msg::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if self.pending.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !self.pending.is_empty() {
            self.write_pending();
        }
        close
    }

    fn finish(&mut self) {
        self.write_checkpoint(true);
        tracing::info!(
            chain = self.chain.id(),
            records = self.chain.next_seq(),
            "audit trail closed"
        );
    }

    fn write_checkpoint(&mut self, last: bool) {
        let mut trial = self.chain.clone();
        let time = timestamp(SystemTime::now());
        let body = checkpoint(self.signer.as_ref(), &trial, &time, last);
        let mut buf = trial.seal(body, time);
        buf.push(b'\n');
        if self.emit(&buf).any {
            self.chain = trial;
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
        }
    }

    /// Seals the pending bodies (adding checkpoints where due), writes them, answers the
    /// acks.
    fn write_pending(&mut self) {
        let mut trial = self.chain.clone();
        let mut since = self.since_checkpoint;
        let time = timestamp(SystemTime::now());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let count = self.pending.len() as u64;
        for (body, _) in &self.pending {
            trial.seal_into(&mut buf, body, &time);
            buf.push(b'\n');
            since += 1;
            if since >= self.every {
                let cp = checkpoint(self.signer.as_ref(), &trial, &time, false);
                trial.seal_into(&mut buf, &EncodedBody::new(&cp), &time);
                buf.push(b'\n');
                since = 0;
                self.last_checkpoint = Instant::now();
            }
        }
        let outcome = self.emit(&buf);
        buf.clear();
        buf.shrink_to(KEEP_BUF);
        self.buf = buf;
        self.last_write = Instant::now();
        if outcome.any {
            self.chain = trial;
            self.since_checkpoint = since;
        }
        let written = outcome.all;
        let result = if written {
            RecordResult::Written
        } else {
            RecordResult::Failed
        };
        self.metrics
            .audit_records
            .get_or_create(&ResultLabel { result })
            .inc_by(count);
        for (body, ack) in self.pending.drain(..) {
            if let Some(ack) = ack {
                let _buf = body.into_vec();
                let _ = ack.send(Done { written, _buf });
            }
        }
    }

    /// Writes `buf` to every sink; true when all took it. The chain advances when any
    /// sink took it, so that what follows links to what is in the files.
    fn emit(&mut self, buf: &[u8]) -> Written {
        let mut failed = None;
        let mut any = false;
        if self.fail.load(Ordering::Acquire) {
            failed = Some(("injected", std::io::Error::other("injected write failure")));
        } else {
            for sink in &mut self.sinks {
                match sink.write(buf) {
                    Ok(()) => any = true,
                    Err(e) => failed = Some((sink.name(), e)),
                }
            }
        }
        let all = failed.is_none();
        let was = self.healthy.swap(all, Ordering::AcqRel);
        self.metrics.audit_sink_up.set(i64::from(all));
        match (was, failed) {
            (true, Some((sink, e))) => {
                tracing::error!(sink, error = %e, "audit sink write failed; see audit.on_failure")
            }
            (false, None) => tracing::info!("audit sink writes again"),
            _ => {}
        }
        Written { any, all }
    }
}

/// What became of one batch.
struct Written {
    /// Some sink took it (the chain advances).
    any: bool,
    /// Every sink took it (the records count as written).
    all: bool,
}
