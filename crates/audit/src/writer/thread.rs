//! The writer thread: it gathers records into batches (many per write under load, one at
//! once when idle), seals them into the chain with checkpoints every `checkpoint.records`
//! records or `checkpoint.interval` and a last one on close, and hands each batch to the
//! sinks. While a sink fails it probes (backing off from 1 s to 1 min while probes keep
//! failing); when writing works again the first line is a `gap` record saying what is
//! missing where.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::sinks::{Sinks, Written};
use super::{Done, Msg, PENDING, Pending, Shared, TAKEN, UNDELIVERED};
use crate::body::EncodedBody;
use crate::chain::Chain;
use crate::checkpoint::{AuditSigner, checkpoint};
use crate::config::{AuditConfig, OnFailure};
use crate::metrics::{Metrics, RecordResult, ResultLabel};
use crate::record::{Body, Gap, Span, timestamp};

/// Records written in one batch at most.
const MAX_BATCH: usize = 512;
/// The batch buffer is kept between batches up to this size.
const KEEP_BUF: usize = 1 << 20;
/// How often the writer looks at checkpoints due and retries a failed sink.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// While a sink fails, the first probe comes after this long; each failed probe doubles
/// the wait up to `PROBE_MAX`, so that a sink that takes the probe's reserve but not its
/// lines costs one `gap` record a minute, not one a second.
pub(super) const PROBE: Duration = Duration::from_secs(1);
const PROBE_MAX: Duration = Duration::from_secs(60);
/// A probe first proves that this much fits in each sink: a full disk can take a short
/// line and still no batch of records.
const PROBE_ROOM: usize = 16 * 1024;
/// Under load (the last batch was written less than `BUSY` ago) the writer sleeps `LINGER`
/// and then takes what came meanwhile, so that one write carries many; when idle it writes
/// a record at once. (This thread only writes audit records: its sleep stalls nothing else.)
const BUSY: Duration = Duration::from_millis(5);
const LINGER: Duration = Duration::from_millis(1);

pub(super) struct Writer {
    sinks: Sinks,
    policy: OnFailure,
    /// The `start` record's body, and whether it is in the sinks (it goes with the next
    /// batch until then).
    start: Option<EncodedBody>,
    started: bool,
    /// Records no sink took since the last line written (told by the next `gap`).
    unwritten: u64,
    /// Under `refuse`: ranges that stayed in a sink although their callers were refused
    /// (told by the next `gap`).
    kept: Vec<Span>,
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
    /// The wait before the next probe.
    probe_wait: Duration,
    /// The batch being formed.
    pending: Vec<Pending>,
    /// The batch's lines, reused from batch to batch.
    buf: Vec<u8>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Writer {
    pub fn new(
        cfg: &AuditConfig,
        sinks: Sinks,
        chain: Chain,
        signer: Option<AuditSigner>,
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sinks,
            policy: cfg.on_failure,
            start: None,
            started: false,
            unwritten: 0,
            kept: Vec::new(),
            reason: String::new(),
            chain,
            signer,
            every: cfg.checkpoint.records,
            interval: cfg.checkpoint.interval,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_write: Instant::now(),
            last_probe: Instant::now(),
            probe_wait: PROBE,
            pending: Vec::new(),
            buf: Vec::new(),
            shared,
            metrics,
        }
    }

    pub fn chain_id(&self) -> &str {
        self.chain.id()
    }

    pub fn signed(&self) -> bool {
        self.signer.is_some()
    }

    pub fn run_thread(self, rx: mpsc::Receiver<Msg>, after: Option<String>) {
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
        let failing = !self.shared.healthy.load(Ordering::Acquire);
        let due = self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval;
        if failing && self.last_probe.elapsed() >= self.probe_wait {
            self.last_probe = Instant::now();
            self.probe();
            if !self.shared.healthy.load(Ordering::Acquire) {
                self.probe_wait = (self.probe_wait * 2).min(PROBE_MAX);
            }
        } else if !failing && due {
            self.write_batch(false, Some(false));
        }
    }

    /// While a sink fails: when every sink proves that a batch of records fits, writes a
    /// checkpoint (after a `gap` record when one is owed) to all of them.
    fn probe(&mut self) {
        match self.sinks.reserve(PROBE_ROOM) {
            Ok(()) => self.write_batch(true, Some(false)),
            Err(e) => self.reason = e.to_string(),
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

    /// The `gap` record owed before the next batch, if any: records no sink took, ranges
    /// a sink kept for refused callers, and (when `all_sinks`, i.e. the sinks behind are
    /// written too) the ranges they missed.
    fn gap(&mut self, next_seq: u64, all_sinks: bool) -> Option<EncodedBody> {
        self.unwritten += self.shared.dropped.swap(0, Ordering::AcqRel);
        let missed = match all_sinks {
            true => self.sinks.missed(next_seq),
            false => Vec::new(),
        };
        if self.unwritten == 0 && missed.is_empty() && self.kept.is_empty() {
            return None;
        }
        Some(EncodedBody::new(&Body::Gap(Gap {
            unwritten: self.unwritten,
            missed,
            undelivered: self.kept.clone(),
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
        let outcome = self.sinks.write(&buf, all_sinks);
        buf.clear();
        buf.shrink_to(KEEP_BUF);
        self.buf = buf;
        self.last_write = Instant::now();
        self.settle(&outcome);
        if outcome.advanced() {
            let from = self.chain.next_seq();
            self.sinks.advance(&outcome.took, from, self.chain.head());
            self.kept = outcome
                .kept
                .iter()
                .map(|sink| Span {
                    sink: (*sink).to_owned(),
                    from,
                    to: trial.next_seq().saturating_sub(1),
                })
                .collect();
            self.started = true;
            self.unwritten = 0;
            self.chain = trial;
            if sealed_checkpoint {
                self.last_checkpoint = Instant::now();
            }
            self.since_checkpoint = since;
        } else {
            self.unwritten += count;
        }
        let written = match self.policy {
            OnFailure::Refuse => outcome.all,
            OnFailure::Continue => outcome.advanced(),
        };
        let result = match outcome.all {
            true => RecordResult::Written,
            false => RecordResult::Failed,
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

    /// Health, the sink metric and one log line per change from a batch's outcome.
    fn settle(&mut self, outcome: &Written) {
        if let Some((_, e)) = &outcome.failed {
            self.reason = e.to_string();
        }
        let was = self.shared.healthy.swap(outcome.all, Ordering::AcqRel);
        self.metrics.audit_sink_up.set(i64::from(outcome.all));
        if outcome.all {
            self.probe_wait = PROBE;
        }
        match (was, outcome.all, &outcome.failed) {
            (true, _, Some((sink, e))) => {
                tracing::error!(sink, error = %e, "audit sink write failed; see audit.on_failure")
            }
            (false, true, _) => tracing::info!("audit sink writes again"),
            _ => {}
        }
        for sink in &outcome.kept {
            tracing::error!(
                sink,
                "audit sink could not take back a batch its callers were refused; the next gap record names it"
            );
        }
    }
}
