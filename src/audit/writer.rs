//! The audit writer: a dedicated thread fed by a bounded queue. Certify hands it a record
//! and waits until the record's batch has been written to every sink (handed to the OS),
//! so a certificate never leaves before its record. Batches form under load; every batch
//! is written at once, so nothing waits longer than one write. Checkpoints are added every
//! `checkpoint.records` records or `checkpoint.interval`, and a last one on close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::chain::Chain;
use super::checkpoint::{AuditSigner, KeyError, checkpoint};
use super::config::{AuditConfig, OnFailure};
use super::record::{Body, CertifyRecord, timestamp};
use super::sink::file::FileSink;
use super::sink::{Sink, StdoutSink};
use crate::metrics::{Metrics, ResultLabel};

/// Records written in one batch at most.
const MAX_BATCH: usize = 512;
/// How often the writer looks at checkpoints due and retries a failed sink.
const TICK: Duration = Duration::from_millis(100);
/// While a sink fails, a probe checkpoint is tried this often.
const PROBE: Duration = Duration::from_secs(1);
/// Under load (the last batch was written less than `BUSY` ago) the writer waits `LINGER`
/// for more records before writing, so that one write carries many; when idle it writes
/// at once.
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

type Ack = oneshot::Sender<bool>;

enum Msg {
    Record(Box<CertifyRecord>, Ack),
    Close(oneshot::Sender<()>),
}

/// The handle Certify uses.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    policy: OnFailure,
    healthy: Arc<AtomicBool>,
    fail: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    unrecorded: Arc<crate::logsum::Repeated>,
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
        let unrecorded = crate::logsum::Repeated::new(
            "certificates issued without an audit record",
            tracing::Level::ERROR,
            crate::logsum::INTERVAL,
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

    /// Hands `record` to the writer and waits (at most `wait`) until it is written.
    pub async fn record(&self, record: CertifyRecord, wait: Duration) -> Result<(), AuditError> {
        let (ack, written) = oneshot::channel();
        let handed = async {
            self.tx
                .send(Msg::Record(Box::new(record), ack))
                .await
                .map_err(|_| AuditError::Unavailable)?;
            match written.await {
                Ok(true) => Ok(()),
                Ok(false) => Err(AuditError::Sink),
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
        self.write(vec![Chain::start_body(after)], Vec::new());
        self.since_checkpoint = 0;
        let mut tick = tokio::time::interval(TICK);
        let mut last_probe = Instant::now();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if let Some(done) = self.batch(msg, &mut rx) {
                        self.finish();
                        let _ = done.send(());
                        return;
                    }
                }
                _ = tick.tick() => {
                    let failing = !self.healthy.load(Ordering::Acquire);
                    let due = self.since_checkpoint > 0
                        && self.last_checkpoint.elapsed() >= self.interval;
                    if (failing && last_probe.elapsed() >= PROBE) || (!failing && due) {
                        last_probe = Instant::now();
                        self.write_checkpoint(false);
                    }
                }
            }
        }
        self.finish();
    }

    /// Writes `first` and whatever else is queued now. Returns the close request, if
    /// one was met (everything before it is written first).
    fn batch(&mut self, first: Msg, rx: &mut mpsc::Receiver<Msg>) -> Option<oneshot::Sender<()>> {
        let (mut bodies, mut acks, mut close) = (Vec::new(), Vec::new(), None);
        if self.last_write.elapsed() < BUSY {
            // This thread only writes audit records: blocking it briefly stalls nothing else.
            std::thread::sleep(LINGER);
        }
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r, ack) => {
                    bodies.push(Body::Certify(r));
                    acks.push(ack);
                }
                Msg::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if bodies.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !bodies.is_empty() {
            self.write(bodies, acks);
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

    /// Seals `bodies` (adding checkpoints where due), writes them, answers the acks.
    fn write(&mut self, bodies: Vec<Body>, acks: Vec<Ack>) {
        let mut trial = self.chain.clone();
        let mut since = self.since_checkpoint;
        let time = timestamp(SystemTime::now());
        let mut buf = Vec::with_capacity(bodies.len() * 700);
        let count = bodies.len() as u64;
        for body in bodies {
            buf.extend(trial.seal(body, time.clone()));
            buf.push(b'\n');
            since += 1;
            if since >= self.every {
                let cp = checkpoint(self.signer.as_ref(), &trial, &time, false);
                buf.extend(trial.seal(cp, time.clone()));
                buf.push(b'\n');
                since = 0;
                self.last_checkpoint = Instant::now();
            }
        }
        let outcome = self.emit(&buf);
        self.last_write = Instant::now();
        if outcome.any {
            self.chain = trial;
            self.since_checkpoint = since;
        }
        let written = outcome.all;
        let result = if written { "written" } else { "failed" };
        self.metrics
            .audit_records
            .get_or_create(&ResultLabel { result })
            .inc_by(count);
        for ack in acks {
            let _ = ack.send(written);
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
