//! The run: fake API server, `certmint serve`, capacity, then traffic, rotations, faults
//! and samples on a fixed schedule until the duration is up.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;

use crate::args::Options;
use crate::chaos::{self, FAULT_FOR, FAULT_OFFSET, FaultKind, Probe, Rotation};
use crate::common::pki::Ca;
use crate::common::{AUDIENCE, linkerd_name};
use crate::fake_kube::TokenSpec;
use crate::fixtures::{SERVER_NAME, csr_pool};
use crate::kube_thread::KubeThread;
use crate::load::{self, Spec, Target};
use crate::machine::Machine;
use crate::sample::{HEADER, Sample, Sampler};
use crate::server::{self, Process};
use crate::tally::{GRACE, Tally};
use crate::traffic::{self, ACCOUNTS, NEW_PODS_PER_SEC, POD_NS, Pool};
use crate::verdict;

const CSRS_PER_ACCOUNT: usize = 500;
const ROTATE_EVERY: Duration = Duration::from_secs(60);
const CAPACITY_FOR: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Sample,
    Rotate(usize),
    FaultOn(usize),
    FaultOff,
}

/// Runs the soak; `Ok(pass)`.
pub fn run(opts: &Options) -> Result<bool, String> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("certmint-soak");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    say(&format!("command: {}", opts.command));
    say(&format!("machine: {}", Machine::now().describe()));
    let kube_thread = KubeThread::start();
    let kube = kube_thread.kube.clone();
    let root = Ca::root("soak root");
    server::put_anchors(&kube, &root);
    server::put_issuer(&kube, &root.issuer("soak issuer 0"));
    let mut process = Process::spawn(&dir, &kube)?;
    say(&format!(
        "certmint serve pid {} ready; log {}",
        process.pid(),
        process.log.display()
    ));
    let csrs: Vec<Vec<Vec<u8>>> = ACCOUNTS
        .iter()
        .map(|sa| csr_pool(&linkerd_name(POD_NS, sa), CSRS_PER_ACCOUNT))
        .collect();
    let target = Target {
        addr: process.grpc,
        tls: Some((root.cert_pem.clone(), SERVER_NAME.to_owned())),
    };
    let ttl = opts.duration + Duration::from_secs(3600);
    let token = |pod: &str| {
        let mut spec = TokenSpec::new(POD_NS, ACCOUNTS[0], &[AUDIENCE], ttl);
        spec.pod = Some(pod.to_owned());
        kube.mint(&spec)
    };
    let rate = match opts.rate {
        Some(r) => r,
        None => {
            let cap = capacity(&target, token("capacity").into_bytes(), &csrs[0]);
            say(&format!(
                "capacity: {cap:.0} Certify/s (TLS, c64 over 8 conns, cached token, {} s)",
                CAPACITY_FOR.as_secs()
            ));
            (cap / 2.0).max(1.0)
        }
    };
    say(&format!(
        "rate: {rate:.0} Certify/s from {} pods ({} service accounts), {NEW_PODS_PER_SEC} new pods/s; duration {}",
        opts.tokens,
        ACCOUNTS.len(),
        humantime::format_duration(opts.duration)
    ));

    let pool = Pool::new(kube.clone(), opts.tokens, csrs.clone(), ttl);
    let tally = Tally::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = traffic::spawn(
        target.clone(),
        pool,
        rate,
        t0 + opts.duration,
        stop.clone(),
        tally.clone(),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("controller runtime: {e}"))?;
    let mut probe = Probe {
        client: rt.block_on(async { IdentityClient::new(load::connect(&target).await) }),
        request: CertifyRequest {
            identity: linkerd_name(POD_NS, ACCOUNTS[0]),
            token: token("probe").into_bytes(),
            certificate_signing_request: csrs[0][0].clone(),
        },
    };
    println!("{HEADER}");
    let mut sampler = Sampler::new(t0);
    let (mut samples, mut rotations): (Vec<Sample>, Vec<Rotation>) = (Vec::new(), Vec::new());
    for (at, event) in schedule(opts) {
        let wait = (t0 + at).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        if !process.alive() {
            say("certmint serve exited; stopping");
            break;
        }
        match event {
            Event::Sample => {
                let ok = rotations.iter().filter(|r| r.applied_in.is_some()).count();
                let s = sampler.take(&process, &kube, &tally, (ok, rotations.len()));
                println!("{}", s.row());
                let _ = std::io::stdout().flush();
                samples.push(s);
            }
            Event::Rotate(n) => {
                let r = rt.block_on(chaos::rotate(n, &root, &kube, &process, &mut probe));
                if let Some(p) = &r.problem {
                    say(&format!("rotation to {} FAILED: {p}", r.name));
                }
                rotations.push(r);
            }
            Event::FaultOn(i) => {
                let kind = FaultKind::nth(i);
                tally.fault_on(kind.name(), kind.allows_unavailable());
                kind.apply(&kube);
            }
            Event::FaultOff => FaultKind::clear(&kube, &tally),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let started = load.join().map_err(|_| "load thread panicked".to_owned())?;
    let alive = process.alive();
    process.stop();
    let counts = tally.counts();
    say(&format!(
        "{started} calls started, {} OK; failures by code {:?}; {} skipped (client backlog full)",
        counts.ok, counts.by_code, counts.skipped
    ));
    say(&format!(
        "rotations: {}",
        rotations
            .iter()
            .map(|r| r.applied_in.map_or("not applied".into(), |d| format!(
                "{:.2} s",
                d.as_secs_f64()
            )))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for line in verdict::fault_lines(&tally.windows_snapshot(), t0) {
        say(&format!("fault at {line}"));
    }
    say(&format!("machine after: {}", Machine::now().load_line()));
    let v = verdict::judge(&samples, opts.warmup, &rotations, &counts, alive);
    v.print();
    Ok(v.pass())
}

/// Samples every interval, a rotation every minute, a fault every `fault_every` minutes
/// starting 25 s into its minute; nothing that would end after the duration.
fn schedule(opts: &Options) -> Vec<(Duration, Event)> {
    let mut events = Vec::new();
    let end = opts.duration;
    let mut t = opts.interval;
    while t <= end {
        events.push((t, Event::Sample));
        t += opts.interval;
    }
    let (mut m, mut faults) = (1u32, 0usize);
    while ROTATE_EVERY * m + Duration::from_secs(30) < end {
        let at = ROTATE_EVERY * m;
        events.push((at, Event::Rotate(m as usize)));
        let fault_at = at + FAULT_OFFSET;
        if u64::from(m - 1) % opts.fault_every == 0 && fault_at + FAULT_FOR + GRACE < end {
            events.push((fault_at, Event::FaultOn(faults)));
            events.push((fault_at + FAULT_FOR, Event::FaultOff));
            faults += 1;
        }
        m += 1;
    }
    events.sort();
    events
}

/// Closed-loop Certify at concurrency 64 with one cached token: calls per second.
fn capacity(target: &Target, token: Vec<u8>, csrs: &[Vec<u8>]) -> f64 {
    let out = load::run(&Spec {
        target: target.clone(),
        identity: linkerd_name(POD_NS, ACCOUNTS[0]),
        token,
        csrs,
        istio: false,
        first_csr: 0,
        requests: 500_000,
        warmup: 500,
        concurrency: 64,
        conns: 8,
        time_cap: Some(CAPACITY_FOR),
    });
    out.rate()
}

fn say(line: &str) {
    eprintln!("soak: {line}");
}
