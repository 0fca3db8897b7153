//! The audit writer: a dedicated thread fed by a bounded queue. Certify serialises its
//! record's body on its own task, hands it over and waits until the record's batch has been
//! written to every sink (handed to the OS), so a certificate never leaves before its
//! record. Batches form under load; every batch is written at once, so nothing waits longer
//! than one write. Checkpoints are added every `checkpoint.records` records or
//! `checkpoint.interval`, and a last one on close.
//!
//! Every sink holds the same lines. Under `refuse` a batch is in every sink or in none
//! (sinks that can take a batch back are written first and undo it when a later one
//! fails). Under `continue` a batch some sink missed stays in the others; when that sink
//! takes records again, a `gap` record names the seq range it lacks and links to its last
//! line. Records that no sink took are counted in the next `gap` record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::body::EncodedBody;
use super::chain::Chain;
use super::checkpoint::{AuditSigner, KeyError, checkpoint};
use super::config::{AuditConfig, OnFailure};
use super::record::{Body, Gap, Missed, timestamp};
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
/// A probe first proves that this much fits in each sink: a full disk can take a short
/// line and still no batch of records.
const PROBE_ROOM: usize = 16 * 1024;
/// After Certify's wait ran out, how long it still waits for a record the writer had
/// already taken as delivered (one write).
const GRACE: Duration = Duration::from_secs(1);
/// The code a caller gets when its certificate's record was not written in time.
const UNDELIVERED: &str = "UNAVAILABLE";
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
        // Sinks that can take a batch back go first (see `Writer::emit`).
        sinks.sort_by_key(|s| !s.can_undo());
        let sinks = sinks
            .into_iter()
            .map(|sink| Slot { sink, behind: None })
            .collect();
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
            policy: cfg.on_failure,
            start: None,
            started: false,
            unwritten: 0,
            reason: String::new(),
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
        self.fail.store(on, Ordering::Release);
    }
}

/// A sink and, under `continue`, the records it missed.
struct Slot {
    sink: Box<dyn Sink>,
    behind: Option<Behind>,
}

/// A sink missed seq `from` onwards; `after` is the hash of the last line it holds.
struct Behind {
    from: u64,
    after: String,
}

struct Writer {
    sinks: Vec<Slot>,
    policy: OnFailure,
    /// The `start` record's body, and whether it is in the sinks (it goes with the next
    /// batch until then).
    start: Option<EncodedBody>,
    started: bool,
    /// Records no sink took since the last line written (told by the next `gap`).
    unwritten: u64,
    /// The last write error, for `gap` records.
    reason: String,
    chain: Chain,
    signer: Option<AuditSigner>,
    every: u64,
    interval: Duration,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_write: Instant,
    last_probe: Instant,
    /// The batch being formed.
    pending: Vec<Pending>,
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
        self.start = Some(EncodedBody::new(&Chain::start_body(after)));
        self.write_batch(false, None);
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

    /// Writes a checkpoint when one is due by time, or a probe while a sink fails.
    fn housekeeping(&mut self) {
        let failing = !self.healthy.load(Ordering::Acquire);
        let due = self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval;
        if failing && self.last_probe.elapsed() >= PROBE {
            self.last_probe = Instant::now();
            self.probe();
        } else if !failing && due {
            self.write_batch(false, Some(false));
        }
    }

    /// While a sink fails: when every sink proves that a batch of records fits, writes a
    /// checkpoint (after a `gap` record when one is owed) to all of them.
    fn probe(&mut self) {
        let injected = self.fail.load(Ordering::Acquire);
        for slot in &mut self.sinks {
            let room = match injected {
                true => Err(std::io::Error::other("injected write failure")),
                false => slot.sink.reserve(PROBE_ROOM),
            };
            if let Err(e) = room {
                self.reason = e.to_string();
                return;
            }
        }
        self.write_batch(true, Some(false));
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
                Msg::Record(p) => self.pending.push(p),
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
            self.write_batch(false, None);
        }
        close
    }

    fn finish(&mut self) {
        self.write_batch(true, Some(true));
        tracing::info!(
            chain = self.chain.id(),
            records = self.chain.next_seq(),
            "audit trail closed"
        );
    }

    /// The `gap` record owed before the next batch, if any: records no sink took, and
    /// (when `all_sinks`, i.e. the sinks behind are written too) the ranges they missed.
    fn gap(&self, next_seq: u64, all_sinks: bool) -> Option<EncodedBody> {
        let missed: Vec<Missed> = match all_sinks {
            true => self
                .sinks
                .iter()
                .filter_map(|slot| {
                    let b = slot.behind.as_ref()?;
                    Some(Missed {
                        sink: slot.sink.name().to_owned(),
                        from: b.from,
                        to: next_seq.checked_sub(1)?,
                        after: b.after.clone(),
                    })
                })
                .collect(),
            false => Vec::new(),
        };
        if self.unwritten == 0 && missed.is_empty() {
            return None;
        }
        Some(EncodedBody::new(&Body::Gap(Gap {
            unwritten: self.unwritten,
            missed,
            reason: self.reason.clone(),
        })))
    }

    /// Seals and writes one batch: the `start` record until it is written, a `gap` record
    /// when one is owed, the pending records (with checkpoints where due) and, when
    /// `checkpoint` is given, a checkpoint (`Some(true)`: the closing one). `all_sinks`
    /// also tries the sinks that are behind (probes and close); otherwise they are left
    /// out until a probe, so that a failing sink costs one gap record, not one a batch.
    fn write_batch(&mut self, all_sinks: bool, checkpoint_last: Option<bool>) {
        let mut trial = self.chain.clone();
        let mut since = self.since_checkpoint;
        let time = timestamp(SystemTime::now());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if !self.started
            && let Some(start) = &self.start
        {
            trial.seal_into(&mut buf, start, &time);
            buf.push(b'\n');
        }
        if let Some(gap) = self.gap(trial.next_seq(), all_sinks) {
            trial.seal_into(&mut buf, &gap, &time);
            buf.push(b'\n');
        }
        let count = self.pending.len() as u64;
        let mut sealed_checkpoint = checkpoint_last.is_some();
        for p in &mut self.pending {
            if let Some(claim) = &p.claim
                && claim
                    .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                p.body.mark_undelivered(UNDELIVERED);
            }
            trial.seal_into(&mut buf, &p.body, &time);
            buf.push(b'\n');
            since += 1;
            if since >= self.every {
                let cp = checkpoint(self.signer.as_ref(), &trial, &time, false);
                trial.seal_into(&mut buf, &EncodedBody::new(&cp), &time);
                buf.push(b'\n');
                since = 0;
                sealed_checkpoint = true;
            }
        }
        if let Some(last) = checkpoint_last {
            let cp = checkpoint(self.signer.as_ref(), &trial, &time, last);
            trial.seal_into(&mut buf, &EncodedBody::new(&cp), &time);
            buf.push(b'\n');
            since = 0;
        }
        let outcome = self.emit(&buf, all_sinks);
        buf.clear();
        buf.shrink_to(KEEP_BUF);
        self.buf = buf;
        self.last_write = Instant::now();
        if outcome.advanced {
            self.advance(trial, &outcome.took);
            if sealed_checkpoint {
                self.last_checkpoint = Instant::now();
            }
            self.since_checkpoint = since;
        } else {
            self.unwritten += count;
        }
        let written = match self.policy {
            OnFailure::Refuse => outcome.all,
            OnFailure::Continue => outcome.advanced,
        };
        let result = if outcome.all {
            RecordResult::Written
        } else {
            RecordResult::Failed
        };
        self.metrics
            .audit_records
            .get_or_create(&ResultLabel { result })
            .inc_by(count);
        for p in self.pending.drain(..) {
            if let Some(ack) = p.ack {
                let _buf = p.body.into_vec();
                let _ = ack.send(Done { written, _buf });
            }
        }
    }

    /// The batch sealed in `trial` is in the sinks `took`: the chain moves on; the others
    /// are behind from the batch's first seq.
    fn advance(&mut self, trial: Chain, took: &[bool]) {
        let (from, after) = (self.chain.next_seq(), self.chain.head().to_owned());
        for (slot, took) in self.sinks.iter_mut().zip(took) {
            if *took {
                slot.behind = None;
            } else if slot.behind.is_none() {
                slot.behind = Some(Behind {
                    from,
                    after: after.clone(),
                });
            }
        }
        self.started = true;
        self.unwritten = 0;
        self.chain = trial;
    }

    /// Writes `buf` to the sinks (those behind only when `all_sinks`). Under `refuse` it
    /// is all or nothing: at the first failure the sinks written are undone (sinks that
    /// can undo come first; a stream is written last).
    fn emit(&mut self, buf: &[u8], all_sinks: bool) -> Written {
        let mut took = vec![false; self.sinks.len()];
        let mut failed = None;
        let mut skipped = false;
        if self.fail.load(Ordering::Acquire) {
            failed = Some(("injected", std::io::Error::other("injected write failure")));
        } else {
            for (i, slot) in self.sinks.iter_mut().enumerate() {
                if slot.behind.is_some() && !all_sinks {
                    skipped = true;
                    continue;
                }
                match slot.sink.write(buf) {
                    Ok(()) => took[i] = true,
                    Err(e) => {
                        failed = Some((slot.sink.name(), e));
                        if self.policy == OnFailure::Refuse {
                            break;
                        }
                    }
                }
            }
        }
        if failed.is_some() && self.policy == OnFailure::Refuse {
            for (slot, took) in self.sinks.iter_mut().zip(took.iter_mut()) {
                if *took && slot.sink.undo().is_ok() {
                    *took = false;
                }
            }
        }
        let all = failed.is_none() && !skipped;
        let advanced = took.iter().any(|t| *t);
        if let Some((_, e)) = &failed {
            self.reason = e.to_string();
        }
        let was = self.healthy.swap(all, Ordering::AcqRel);
        self.metrics.audit_sink_up.set(i64::from(all));
        match (was, all, failed) {
            (true, _, Some((sink, e))) => {
                tracing::error!(sink, error = %e, "audit sink write failed; see audit.on_failure")
            }
            (false, true, _) => tracing::info!("audit sink writes again"),
            _ => {}
        }
        Written {
            all,
            advanced,
            took,
        }
    }
}

/// What became of one batch.
struct Written {
    /// Every sink took it.
    all: bool,
    /// Some sink holds it (the chain advances).
    advanced: bool,
    /// Which sinks hold it.
    took: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use super::*;
    use crate::load::AuditFile;
    use crate::record::{CertFields, CertifyRecord, Record};
    use crate::verify::verify;

    /// A sink in memory that fails on demand, or when a write would pass `cap` bytes (a
    /// disk that fills); `undoable` makes it behave as a file, else as a stream.
    struct Disk {
        data: Mutex<Vec<u8>>,
        before: Mutex<usize>,
        fail: AtomicBool,
        /// Each write takes 300 ms (a slow disk).
        slow: AtomicBool,
        cap: usize,
        undoable: bool,
    }

    struct Handle(Arc<Disk>);

    impl Disk {
        fn new(undoable: bool, cap: usize) -> Arc<Self> {
            Arc::new(Self {
                data: Mutex::new(Vec::new()),
                before: Mutex::new(0),
                fail: AtomicBool::new(false),
                slow: AtomicBool::new(false),
                cap,
                undoable,
            })
        }

        fn full(&self, more: usize) -> bool {
            self.fail.load(Ordering::Acquire)
                || self.data.lock().unwrap().len().saturating_add(more) > self.cap
        }

        fn records(&self) -> Vec<Record> {
            let data = self.data.lock().unwrap();
            String::from_utf8_lossy(&data)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }

        /// `audit verify` on this sink's lines: (notes, gaps, break).
        fn verified(&self, dir: &std::path::Path, name: &str) -> crate::verify::Report {
            let path = dir.join(name);
            std::fs::write(&path, &*self.data.lock().unwrap()).unwrap();
            verify(&[AuditFile::read(&path).unwrap()], None)
        }
    }

    impl Sink for Handle {
        fn write(&mut self, batch: &[u8]) -> io::Result<()> {
            if self.0.slow.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(300));
            }
            if self.0.full(batch.len()) {
                return Err(io::Error::other("no space left on test disk"));
            }
            let mut data = self.0.data.lock().unwrap();
            *self.0.before.lock().unwrap() = data.len();
            data.extend_from_slice(batch);
            Ok(())
        }
        fn name(&self) -> &'static str {
            if self.0.undoable { "file" } else { "stdout" }
        }
        fn can_undo(&self) -> bool {
            self.0.undoable
        }
        fn undo(&mut self) -> io::Result<()> {
            if !self.0.undoable {
                return Err(io::ErrorKind::Unsupported.into());
            }
            let before = *self.0.before.lock().unwrap();
            self.0.data.lock().unwrap().truncate(before);
            Ok(())
        }
        fn reserve(&mut self, bytes: usize) -> io::Result<()> {
            match self.0.full(bytes) {
                true => Err(io::Error::other("no space left on test disk")),
                false => Ok(()),
            }
        }
    }

    fn config(policy: OnFailure) -> AuditConfig {
        AuditConfig {
            enabled: true,
            replica: Some("r-0".into()),
            on_failure: policy,
            ..AuditConfig::default()
        }
    }

    fn start(policy: OnFailure, disks: &[&Arc<Disk>]) -> Arc<AuditLog> {
        let sinks = disks
            .iter()
            .map(|d| Box::new(Handle(Arc::clone(d))) as Box<dyn Sink>)
            .collect();
        AuditLog::start_with(&config(policy), Arc::new(Metrics::default()), sinks).unwrap()
    }

    /// An issued certificate's record; `identity` sets its size.
    fn issued(n: usize, identity: &str) -> EncodedBody {
        EncodedBody::new(&Body::Certify(Box::new(CertifyRecord {
            api: "linkerd".into(),
            identity: identity.into(),
            peer: None,
            caller: None,
            code: "OK".into(),
            reason: "issued".into(),
            cert: Some(CertFields {
                serial: format!("{n:02x}"),
                not_before: "t".into(),
                not_after: "t".into(),
                sha256: "ab".repeat(32),
                spki_sha256: "cd".repeat(32),
                issuer_serial: "01".into(),
                issuer_sha256: "ef".repeat(32),
            }),
            undelivered: None,
        })))
    }

    fn serials(d: &Disk) -> Vec<String> {
        d.records()
            .into_iter()
            .filter_map(|r| match r.body {
                Body::Certify(c) => c.cert.map(|c| c.serial),
                _ => None,
            })
            .collect()
    }

    const WAIT: Duration = Duration::from_secs(5);

    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..100 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}");
    }

    #[tokio::test]
    async fn refuse_writes_a_record_to_every_sink_or_to_none() {
        let dir = tempfile::tempdir().unwrap();
        let (file, stdout) = (Disk::new(true, usize::MAX), Disk::new(false, usize::MAX));
        let log = start(OnFailure::Refuse, &[&stdout, &file]);
        log.record_issued(issued(1, "web"), WAIT).await.unwrap();
        // The file fails while the stream works: nothing of it reaches the stream.
        file.fail.store(true, Ordering::Release);
        for n in 2..6 {
            let err = log.record_issued(issued(n, "web"), WAIT).await;
            assert!(matches!(err, Err(AuditError::Sink)), "{err:?}");
        }
        assert!(!log.healthy());
        // The stream fails after the file took a batch: the file takes it back.
        stdout.fail.store(true, Ordering::Release);
        file.fail.store(false, Ordering::Release);
        assert!(log.record_issued(issued(6, "web"), WAIT).await.is_err());
        stdout.fail.store(false, Ordering::Release);
        eventually("healthy after a probe", || log.healthy()).await;
        log.record_issued(issued(7, "web"), WAIT).await.unwrap();
        log.close().await;

        for (d, name) in [(&file, "file"), (&stdout, "stdout")] {
            assert_eq!(
                serials(d),
                ["01", "07"],
                "{name} holds only what callers got"
            );
            let report = d.verified(dir.path(), name);
            assert_eq!(report.broken, None, "{name}");
            assert_eq!(report.gaps.len(), 1, "{name}: {:?}", report.gaps);
            assert!(report.gaps[0].contains("5 record(s)"), "{:?}", report.gaps);
        }
        assert_eq!(*file.data.lock().unwrap(), *stdout.data.lock().unwrap());
    }

    #[tokio::test]
    async fn continue_keeps_writing_the_working_sink_and_the_failed_one_records_its_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (file, stdout) = (Disk::new(true, usize::MAX), Disk::new(false, usize::MAX));
        let log = start(OnFailure::Continue, &[&file, &stdout]);
        log.record_issued(issued(1, "web"), WAIT).await.unwrap();
        file.fail.store(true, Ordering::Release);
        for n in 2..6 {
            log.record_issued(issued(n, "web"), WAIT).await.unwrap();
        }
        assert!(!log.healthy());
        file.fail.store(false, Ordering::Release);
        eventually("healthy after a probe", || log.healthy()).await;
        log.record_issued(issued(6, "web"), WAIT).await.unwrap();
        log.close().await;

        assert_eq!(serials(&stdout), ["01", "02", "03", "04", "05", "06"]);
        assert_eq!(serials(&file), ["01", "06"]);
        let report = file.verified(dir.path(), "file");
        assert_eq!(report.broken, None);
        assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
        assert!(report.gaps[0].contains("seq 2–5"), "{:?}", report.gaps);
        assert!(
            report.gaps[0].contains("not a deletion"),
            "{:?}",
            report.gaps
        );
        let report = stdout.verified(dir.path(), "stdout");
        assert_eq!(report.broken, None);
        assert!(report.gaps.is_empty(), "{:?}", report.gaps);

        // Without the gap record the same file is a deletion.
        let lines: Vec<String> = String::from_utf8_lossy(&file.data.lock().unwrap())
            .lines()
            .filter(|l| !l.contains("\"kind\":\"gap\""))
            .map(str::to_owned)
            .collect();
        let path = dir.path().join("cut");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let report = verify(&[AuditFile::read(&path).unwrap()], None);
        assert!(report.broken.is_some(), "{:?}", report.gaps);
    }

    #[tokio::test]
    async fn a_disk_that_takes_a_checkpoint_but_not_a_record_stays_unhealthy() {
        // Room for the start record and a few hundred bytes more: a probe checkpoint fits,
        // a record of 2 KiB does not.
        let disk = Disk::new(true, 1024);
        let log = start(OnFailure::Refuse, &[&disk]);
        let big = "w".repeat(2048);
        assert!(log.record_issued(issued(1, &big), WAIT).await.is_err());
        tokio::time::sleep(PROBE * 2 + TICK * 2).await;
        assert!(!log.healthy(), "ready again though no record fits");
        log.close().await;
    }

    #[tokio::test]
    async fn a_record_that_came_after_the_caller_gave_up_says_it_was_not_delivered() {
        let disk = Disk::new(true, usize::MAX);
        let log = start(OnFailure::Refuse, &[&disk]);
        disk.slow.store(true, Ordering::Release);
        let first = tokio::spawn({
            let log = log.clone();
            async move { log.record_issued(issued(1, "web"), WAIT).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The writer is busy with the first record: this one's wait runs out in the queue.
        let err = log
            .record_issued(issued(2, "web"), Duration::from_millis(100))
            .await;
        assert!(matches!(err, Err(AuditError::Unavailable)), "{err:?}");
        first.await.unwrap().unwrap();
        disk.slow.store(false, Ordering::Release);
        log.close().await;
        let certify: Vec<_> = disk
            .records()
            .into_iter()
            .filter_map(|r| match r.body {
                Body::Certify(c) => Some(*c),
                _ => None,
            })
            .collect();
        let got: Vec<_> = certify
            .iter()
            .map(|c| {
                (
                    c.cert.as_ref().unwrap().serial.as_str(),
                    c.undelivered.as_deref(),
                )
            })
            .collect();
        assert_eq!(got, [("01", None), ("02", Some("UNAVAILABLE"))]);
    }
}
