//! Section 3, end to end: a running server (plaintext and TLS) with TokenReview authn whose
//! one token is served from the cache, Certify over loopback HTTP/2 at concurrency 1 and 64.
//! A third server, plaintext with the audit trail on (file sink, Ed25519-signed
//! checkpoints), runs the c64 one-connection case right after the plaintext one, round
//! after round, for the audit cost ratio (issue 12); a fourth, plaintext with Istio's API
//! on, runs the same case through CreateCertificate (PEM in and out) for the Istio/Linkerd
//! ratio (issue 13); a fifth, where SoftHSM2 is installed, signs with an issuer key inside
//! a token (issue 22) for the HSM/in-memory ratio.

use std::time::Duration;

use super::args::Options;
use super::fixtures::{NS, Pki, SA, identity};
use super::floor;
use super::load::{self, Outcome, Spec};
use super::pipeline::median;
use super::report::{Row, Target};
use super::server::InProcess;
use crate::common::AUDIENCE;

/// (concurrency, connections) per case; the first c64 case is the one the targets use.
/// (64, 64) is a herd of proxies as it reaches a real CA: one call on each connection.
const CASES: [(usize, usize); 4] = [(1, 1), (64, 1), (64, 8), (64, 64)];
/// Server modes: index into the environments.
const PLAIN: usize = 0;
const TLS: usize = 1;
const AUDIT: usize = 2;
const ISTIO: usize = 3;
const HSM: usize = 4;
/// Istio's default token audience.
const ISTIO_AUDIENCE: &str = "istio-ca";

pub fn run(opts: &Options, pki: &Pki, csrs: &[Vec<u8>]) -> (Vec<Row>, Vec<Target>) {
    // Both servers run side by side and the cases alternate between them, round after
    // round, so that a slow spell of this VM does not land on one mode only.
    let audit_dir = tempfile::tempdir().expect("audit dir");
    let mut envs = vec![
        InProcess::start(pki, false, |_| {}),
        InProcess::start(pki, true, |_| {}),
        InProcess::start(pki, false, |c| audit_on(c, audit_dir.path())),
        InProcess::start(pki, false, |c| c.istio.enabled = true),
    ];
    if let Some(soft) = crate::common::softhsm::softhsm() {
        envs.push(InProcess::start(pki, false, |c| hsm_on(c, soft, pki)));
    }
    let hsm = envs.len() > HSM;
    let istio_csrs = super::fixtures::istio_csr_pool(csrs.len());
    let tokens: Vec<Vec<u8>> = envs
        .iter()
        .enumerate()
        .map(|(m, e)| {
            let aud = if m == ISTIO { ISTIO_AUDIENCE } else { AUDIENCE };
            let t = e
                .kube
                .kube
                .mint_token(NS, SA, &[aud], Duration::from_secs(3600));
            t.into_bytes()
        })
        .collect();
    let rounds = if opts.quick { 1 } else { 3 };
    let mut runs: Vec<((usize, usize, usize), Vec<Outcome>)> = Vec::new();
    // Per round: the floor measured just before, and the c64 one-connection rates.
    let mut ratios = Ratios::default();
    for round in 0..rounds {
        let fc = floor::measure(Duration::from_millis(if opts.quick { 200 } else { 500 }));
        let mut c64 = [0.0; 5];
        for (i, (concurrency, conns)) in CASES.into_iter().enumerate() {
            // Audit on and off alternate which goes first, round by round.
            let modes: &[usize] = match ((concurrency, conns), round % 2) {
                ((64, 1), 0) => &[PLAIN, AUDIT, ISTIO, HSM, TLS],
                ((64, 1), _) => &[HSM, ISTIO, AUDIT, PLAIN, TLS],
                _ => &[PLAIN, TLS],
            };
            for &m in modes.iter().filter(|&&m| m != HSM || hsm) {
                let pool = if m == ISTIO { &istio_csrs } else { csrs };
                let mut run = spec(opts, &envs[m], &tokens[m], pool, i, concurrency, conns);
                run.istio = m == ISTIO;
                let out = load::run(&run);
                if (concurrency, conns) == (64, 1) {
                    c64[m] = out.rate();
                }
                let key = (m, concurrency, conns);
                match runs.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push(out),
                    None => runs.push((key, vec![out])),
                }
            }
        }
        ratios.floor.push(fc.certs_per_core());
        ratios
            .throughput
            .push(c64[PLAIN] / (2.0 * fc.certs_per_core()));
        ratios.tls.push(c64[TLS] / c64[PLAIN]);
        ratios.audit.push(c64[AUDIT] / c64[PLAIN]);
        ratios.istio.push(c64[ISTIO] / c64[PLAIN]);
        if hsm {
            ratios.hsm.push(c64[HSM] / c64[PLAIN]);
        }
    }
    // Rows by mode, then case; each shows its median run (by throughput).
    runs.sort_by_key(|((m, c, n), _)| (*m, *c, *n));
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for ((mode, concurrency, conns), mut outs) in runs {
        outs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        let rates: Vec<String> = outs.iter().map(|o| format!("{:.0}", o.rate())).collect();
        let median = outs.swap_remove(outs.len() / 2);
        let req = requests(opts, concurrency);
        let mut r = row(mode, concurrency, conns, req, &median);
        if rounds > 1 {
            r.note = format!(
                "median of {rounds} runs ({}/s); {}",
                rates.join(", "),
                r.note
            );
        }
        rows.push(r);
        results.push(((mode, concurrency, conns), median));
    }
    (rows, targets(&results, &ratios))
}

/// Ratios taken within each round (the floor drifts between rounds on this VM).
#[derive(Default)]
struct Ratios {
    floor: Vec<f64>,
    throughput: Vec<f64>,
    tls: Vec<f64>,
    /// Audit on / off, plaintext c64.
    audit: Vec<f64>,
    /// Istio's CreateCertificate / Linkerd's Certify, plaintext c64.
    istio: Vec<f64>,
    /// Issuer key in SoftHSM / in memory, plaintext c64.
    hsm: Vec<f64>,
}

/// The issuer's key inside a SoftHSM token: a key generated there, an issuer certificate
/// for it signed by the bench root, the issuer file naming the key by its URI.
pub(super) fn hsm_on(
    c: &mut certmint::config::Config,
    soft: &crate::common::softhsm::SoftHsm,
    pki: &Pki,
) {
    use crate::common::softhsm::{config, issuer_for, key_uri};
    // The token first: a process's module sees only the tokens present at its start.
    let token = soft.token("bench");
    let hsm = config(soft, &soft.pin_file);
    let keys = certmint_hsm::HsmKeys::new(&hsm, std::sync::Arc::default()).expect("SoftHSM");
    let key = keys
        .generate(&key_uri(&token, "issuer"), certmint_hsm::Curve::P256)
        .expect("a key in the token");
    let issuer = issuer_for(&pki.root, std::sync::Arc::new(key));
    std::fs::write(c.issuer.dir.join("tls.crt"), &issuer.cert_pem).expect("issuer cert");
    std::fs::write(c.issuer.dir.join("tls.key"), &issuer.key_pem).expect("issuer key URI");
    c.hsm = Some(hsm);
}

/// The audit trail as the chart runs it: a file sink, checkpoints signed with Ed25519.
pub(super) fn audit_on(c: &mut certmint::config::Config, dir: &std::path::Path) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("audit key");
    let key_path = dir.join("audit.key");
    std::fs::write(&key_path, key.serialize_pem()).expect("audit key file");
    c.audit.enabled = true;
    c.audit.replica = Some("bench".into());
    c.audit.checkpoint.key = Some(key_path);
    c.audit.file = Some(certmint_audit::config::FileSinkConfig {
        path: dir.join("audit.jsonl"),
        max_size: 256 * 1024 * 1024,
        keep: 2,
    });
}

fn spec<'a>(
    opts: &Options,
    env: &InProcess,
    token: &[u8],
    csrs: &'a [Vec<u8>],
    case: usize,
    concurrency: usize,
    conns: usize,
) -> Spec<'a> {
    Spec {
        target: env.target.clone(),
        identity: identity(),
        token: token.to_vec(),
        csrs,
        istio: false,
        first_csr: case * 10_000,
        requests: requests(opts, concurrency),
        warmup: opts.scaled(500),
        concurrency,
        conns,
        time_cap: Some(Duration::from_secs(if opts.quick { 3 } else { 10 })),
    }
}

fn requests(opts: &Options, concurrency: usize) -> usize {
    opts.scaled(if concurrency == 1 { 3_000 } else { 30_000 })
}

fn case_name(mode: usize, concurrency: usize, conns: usize) -> String {
    let mode = match mode {
        TLS => "TLS",
        AUDIT => "plaintext+audit",
        ISTIO => "plaintext, Istio API",
        HSM => "plaintext, HSM issuer key",
        _ => "plaintext",
    };
    let conns = if conns == 1 {
        "1 conn".to_owned()
    } else {
        format!("{conns} conns")
    };
    format!("{mode}, c{concurrency}, {conns}")
}

fn row(mode: usize, concurrency: usize, conns: usize, requests: usize, out: &Outcome) -> Row {
    let secs = out.wall.as_secs_f64();
    let server_cpu = out.process_cpu.saturating_sub(out.client_cpu).as_secs_f64();
    let mut r = Row::new("e2e", case_name(mode, concurrency, conns))
        .metric("certs", out.rate(), "/s")
        .metric("p50", out.percentile_ms(0.50), "ms")
        .metric("p90", out.percentile_ms(0.90), "ms")
        .metric("p99", out.percentile_ms(0.99), "ms")
        .metric("server cpu", server_cpu / secs, "cores")
        .metric("client cpu", out.client_cpu.as_secs_f64() / secs, "cores")
        .metric("others", out.other_cores, "cores");
    let mut note = format!("{} calls in {:.2} s", out.ok, secs);
    if out.ok + out.errors < requests {
        note += &format!(" (time cap reached before {requests})");
    }
    if out.errors > 0 {
        note += &format!(
            "; {} errors, first: {}",
            out.errors,
            out.first_error.as_deref().unwrap_or("?")
        );
        r = r.metric("errors", out.errors as f64, "");
    }
    r.note(note)
}

type Results = [((usize, usize, usize), Outcome)];

fn find(results: &Results, mode: usize, concurrency: usize) -> Option<&Outcome> {
    results
        .iter()
        .find(|((m, c, n), _)| *m == mode && *c == concurrency && *n == 1)
        .map(|(_, o)| o)
}

fn targets(results: &Results, ratios: &Ratios) -> Vec<Target> {
    let mut t = Vec::new();
    if ratios.floor.is_empty() {
        return t;
    }
    let floor = median(ratios.floor.clone());
    t.push(Target::at_least(
        format!("e2e plaintext c64 ≥ 0.4 × 2 × floor ({:.0}/s)", 0.8 * floor),
        median(ratios.throughput.clone()),
        0.4,
        "x",
    ));
    for (name, ratio, limit) in [
        (
            "e2e TLS c64 within 15 % of plaintext (TLS/plain)",
            &ratios.tls,
            0.85,
        ),
        (
            "e2e plaintext c64 with audit ≥ 0.9 × without (audit/off)",
            &ratios.audit,
            0.9,
        ),
        (
            "e2e Istio CreateCertificate c64 ≥ 0.9 × Linkerd Certify (istio/linkerd)",
            &ratios.istio,
            0.9,
        ),
        (
            "e2e HSM issuer key (SoftHSM) c64 ≥ 0.7 × in memory (hsm/memory)",
            &ratios.hsm,
            0.7,
        ),
    ] {
        if !ratio.is_empty() {
            t.push(Target::at_least(name, median(ratio.clone()), limit, "x"));
        }
    }
    for (m, mode) in [(PLAIN, "plaintext"), (TLS, "TLS")] {
        if let Some(o) = find(results, m, 64) {
            t.push(Target::at_most(
                format!("e2e {mode} p99 at c64"),
                o.percentile_ms(0.99),
                10.0,
                "ms",
            ));
        }
        if let Some(o) = find(results, m, 1) {
            t.push(Target::at_most(
                format!("e2e {mode} p99 at c1"),
                o.percentile_ms(0.99),
                1.0,
                "ms",
            ));
        }
    }
    t
}
