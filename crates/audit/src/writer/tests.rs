use std::io;
use std::sync::Mutex;

use super::thread::{PROBE, TICK};
use super::*;
use crate::load::AuditFile;
use crate::record::{Body, CertFields, CertifyRecord, Gap, Record};
use crate::verify::verify;

/// A sink in memory that fails on demand, or when a write would pass `cap` bytes (a
/// disk that fills); `undoable` makes it behave as a file, else as a stream.
struct Disk {
    data: Mutex<Vec<u8>>,
    before: Mutex<usize>,
    fail: AtomicBool,
    /// Writes wait while this is set (a disk that hangs), and count as started.
    hold: AtomicBool,
    started: std::sync::atomic::AtomicUsize,
    /// `undo` fails (a file whose truncate fails too).
    undo_fails: AtomicBool,
    /// `reserve` succeeds even while writes fail.
    lies: AtomicBool,
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
            hold: AtomicBool::new(false),
            started: std::sync::atomic::AtomicUsize::new(0),
            undo_fails: AtomicBool::new(false),
            lies: AtomicBool::new(false),
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
        self.0.started.fetch_add(1, Ordering::AcqRel);
        while self.0.hold.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
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
        if self.0.undo_fails.load(Ordering::Acquire) {
            return Err(io::Error::other("truncate failed"));
        }
        let before = *self.0.before.lock().unwrap();
        self.0.data.lock().unwrap().truncate(before);
        Ok(())
    }
    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        match self.0.full(bytes) && !self.0.lies.load(Ordering::Acquire) {
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
    start_config(config(policy), disks)
}

fn start_config(cfg: AuditConfig, disks: &[&Arc<Disk>]) -> Arc<AuditLog> {
    let sinks = disks
        .iter()
        .map(|d| Box::new(Handle(Arc::clone(d))) as Box<dyn Sink>)
        .collect();
    AuditLog::start_with(&cfg, Arc::new(Metrics::default()), sinks).unwrap()
}

fn gaps(d: &Disk) -> Vec<Gap> {
    d.records()
        .into_iter()
        .filter_map(|r| match r.body {
            Body::Gap(g) => Some(g),
            _ => None,
        })
        .collect()
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
        request: None,
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
/// For waits on other threads under load (CI runs two builds beside the tests).
const LONG: Duration = Duration::from_secs(30);

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    eventually_within(Duration::from_secs(5), what, cond).await
}

async fn eventually_within(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let step = Duration::from_millis(50);
    for _ in 0..(limit.as_millis() / step.as_millis()) {
        if cond() {
            return;
        }
        tokio::time::sleep(step).await;
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
    disk.hold.store(true, Ordering::Release);
    let before = disk.started.load(Ordering::Acquire);
    let first = tokio::spawn({
        let log = log.clone();
        async move { log.record_issued(issued(1, "web"), LONG).await }
    });
    eventually_within(LONG, "the writer is in the write of 1", || {
        disk.started.load(Ordering::Acquire) > before
    })
    .await;
    // The writer is busy with the first record: this one's wait runs out in the queue.
    let err = log
        .record_issued(issued(2, "web"), Duration::from_millis(100))
        .await;
    assert!(matches!(err, Err(AuditError::Unavailable)), "{err:?}");
    disk.hold.store(false, Ordering::Release);
    first.await.unwrap().unwrap();
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

#[tokio::test]
async fn refuse_names_a_batch_that_a_sink_could_not_take_back() {
    let dir = tempfile::tempdir().unwrap();
    let (file, stdout) = (Disk::new(true, usize::MAX), Disk::new(false, usize::MAX));
    let log = start(OnFailure::Refuse, &[&stdout, &file]);
    log.record_issued(issued(1, "web"), WAIT).await.unwrap();
    file.undo_fails.store(true, Ordering::Release);
    stdout.fail.store(true, Ordering::Release);
    let err = log.record_issued(issued(2, "web"), WAIT).await;
    assert!(matches!(err, Err(AuditError::Sink)), "{err:?}");
    stdout.fail.store(false, Ordering::Release);
    eventually("healthy after a probe", || log.healthy()).await;
    log.record_issued(issued(3, "web"), WAIT).await.unwrap();
    log.close().await;

    // The file holds the refused caller's record, and says so inside its chain.
    assert_eq!(serials(&file), ["01", "02", "03"]);
    assert_eq!(serials(&stdout), ["01", "03"]);
    let gap = &gaps(&file)[0];
    assert_eq!(gap.undelivered.len(), 1, "{gap:?}");
    let span = &gap.undelivered[0];
    assert_eq!((span.sink.as_str(), span.from, span.to), ("file", 2, 2));
    let report = file.verified(dir.path(), "file");
    assert_eq!(report.broken, None);
    assert!(
        report
            .gaps
            .iter()
            .any(|g| g.contains("seq 2–2 in the file sink were not delivered")),
        "{:?}",
        report.gaps
    );
    let report = stdout.verified(dir.path(), "stdout");
    assert_eq!(report.broken, None, "{:?}", report.gaps);
}

#[tokio::test]
async fn a_record_the_full_queue_never_took_is_counted_in_the_next_gap() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(true, usize::MAX);
    let log = start_config(
        AuditConfig {
            queue: 1,
            ..config(OnFailure::Refuse)
        },
        &[&disk],
    );
    log.record_issued(issued(1, "web"), WAIT).await.unwrap();
    // The writer hangs in the write of 2, 3 waits in the queue, 4 finds the queue full.
    disk.hold.store(true, Ordering::Release);
    let before = disk.started.load(Ordering::Acquire);
    let spawn = |n| {
        let log = log.clone();
        tokio::spawn(async move { log.record_issued(issued(n, "web"), LONG).await })
    };
    let mut busy = vec![spawn(2)];
    eventually_within(LONG, "the writer is in the write of 2", || {
        disk.started.load(Ordering::Acquire) > before
    })
    .await;
    busy.push(spawn(3));
    eventually_within(LONG, "the queue is full", || log.tx.capacity() == 0).await;
    let err = log
        .record_issued(issued(4, "web"), Duration::from_millis(50))
        .await;
    assert!(matches!(err, Err(AuditError::Unavailable)), "{err:?}");
    disk.hold.store(false, Ordering::Release);
    for b in busy {
        b.await.unwrap().unwrap();
    }
    log.record_issued(issued(5, "web"), WAIT).await.unwrap();
    log.close().await;

    assert_eq!(serials(&disk), ["01", "02", "03", "05"]);
    let unwritten: u64 = gaps(&disk).iter().map(|g| g.unwritten).sum();
    assert_eq!(unwritten, 1);
    let report = disk.verified(dir.path(), "file");
    assert_eq!(report.broken, None);
    assert!(
        report.gaps[0].contains("1 record(s) before seq"),
        "{:?}",
        report.gaps
    );
}

#[tokio::test]
async fn a_sink_that_takes_the_reserve_but_not_records_is_probed_less_and_less() {
    let (file, stdout) = (Disk::new(true, usize::MAX), Disk::new(false, usize::MAX));
    let log = start(OnFailure::Continue, &[&file, &stdout]);
    log.record_issued(issued(1, "web"), WAIT).await.unwrap();
    file.fail.store(true, Ordering::Release);
    file.lies.store(true, Ordering::Release);
    log.record_issued(issued(2, "web"), WAIT).await.unwrap();
    // Probes every second would write 7 gap records to stdout in 7 s; backing off (1 s,
    // 2 s, 4 s) at most 3. (A busy machine only makes probes later, never earlier.)
    tokio::time::sleep(Duration::from_secs(7)).await;
    let seen = gaps(&stdout).len();
    assert!((1..=3).contains(&seen), "{seen} gap records in 7 s");
    // Once the sink writes again, the next probe (at most 8 s away after 1 + 2 + 4 s of
    // failures) finds it healthy.
    file.fail.store(false, Ordering::Release);
    eventually_within(Duration::from_secs(30), "healthy within a probe", || {
        log.healthy()
    })
    .await;
    log.close().await;
    assert!(!gaps(&file).is_empty());
}
