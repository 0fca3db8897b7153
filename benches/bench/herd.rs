//! Section 4, the herd: N pods start at once, each with its own token, against the fake API
//! server answering TokenReviews after 5 ms. Clients retry UNAVAILABLE after a short
//! jittered backoff, as linkerd2-proxy does. Measures the wall time until every pod is
//! certified, the TokenReviews made and the most in flight at once, for each
//! `local_verification` mode (issue 11), with the API server up and with it refusing
//! connections after certmint became ready.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use certmint::config::LocalVerification;
use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tonic::Code;

use super::args::Options;
use super::fixtures::{NS, Pki, SA, identity};
use super::load::{self, percentile};
use super::report::{Row, Target};
use super::server::InProcess;
use crate::common::AUDIENCE;
use crate::fake_kube::{Outage, RequestKind, TokenSpec};

const REVIEW_LATENCY: Duration = Duration::from_millis(5);
/// The server's default stream limit: one connection per this many pods.
const STREAMS_PER_CONN: usize = 100;
/// A herd still running after this long is reported as incomplete.
const GIVE_UP: Duration = Duration::from_secs(600);
/// With `off` and the API server down nobody is certified: sample this long only.
const DOWN_SAMPLE: Duration = Duration::from_secs(5);
/// Pods in the `off`, API-server-down sample.
const DOWN_SAMPLE_PODS: usize = 500;
/// Issue 11's target for `fallback` and `first` with the API server up.
const COLD_START_TARGET: f64 = 5.0;

/// A TokenReview budget: (max in flight, qps, burst).
#[derive(Clone, Copy)]
struct Budget {
    in_flight: usize,
    qps: u32,
    burst: u32,
}

const DEFAULTS: Budget = Budget {
    in_flight: 100,
    qps: 100,
    burst: 200,
};
const RAISED: Budget = Budget {
    in_flight: 100,
    qps: 2000,
    burst: 2000,
};

#[derive(Default)]
struct Tally {
    certified: usize,
    retries: usize,
    errors: usize,
    first_error: Option<String>,
    /// Per pod, from its first attempt to its certificate, in µs.
    latencies: Vec<u32>,
}

struct Case {
    label: &'static str,
    mode: LocalVerification,
    budget: Budget,
    /// The API server refuses connections once certmint is ready.
    down: bool,
}

/// What one case measured.
struct Outcome {
    wall: f64,
    tally: Tally,
    n: usize,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.tally.certified as f64 / self.wall
    }
}

pub fn run(opts: &Options, pki: &Pki, csrs: &[Vec<u8>]) -> (Vec<Row>, Vec<Target>) {
    use LocalVerification::{Fallback, First, Off};
    let n = opts.herd;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let case = |label, mode, budget, down| Case {
        label,
        mode,
        budget,
        down,
    };
    for c in [
        case("off, defaults", Off, DEFAULTS, false),
        case("off, raised qps", Off, RAISED, false),
    ] {
        let (row, o) = run_case(n, &c, pki, csrs);
        rows.push(row);
        targets.extend(complete_targets(c.label, &o));
    }
    let (row, o) = run_case(
        n,
        &case("off, API server down", Off, DEFAULTS, true),
        pki,
        csrs,
    );
    rows.push(row);
    targets.push(Target::at_most(
        "herd off, API server down: pods certified (UNAVAILABLE instead)",
        o.tally.certified as f64,
        0.0,
        "",
    ));
    for mode in [Fallback, First] {
        let up_label = if mode == Fallback {
            "fallback"
        } else {
            "first"
        };
        let down_label = if mode == Fallback {
            "fallback, API server down"
        } else {
            "first, API server down"
        };
        let (row, up) = run_case(n, &case(up_label, mode, DEFAULTS, false), pki, csrs);
        rows.push(row);
        targets.extend(complete_targets(up_label, &up));
        targets.push(Target::at_most(
            format!("herd {up_label}: wall for N pods"),
            up.wall,
            COLD_START_TARGET,
            "s",
        ));
        let (row, down) = run_case(n, &case(down_label, mode, DEFAULTS, true), pki, csrs);
        rows.push(row);
        targets.extend(complete_targets(down_label, &down));
        targets.push(Target::at_least(
            format!("herd {down_label}: rate / rate with API server up"),
            down.rate() / up.rate(),
            0.9,
            "x",
        ));
    }
    (rows, targets)
}

fn complete_targets(label: &str, o: &Outcome) -> Vec<Target> {
    vec![
        Target::at_least(
            format!("herd {label}: pods certified / N"),
            o.tally.certified as f64 / o.n as f64,
            1.0,
            "x",
        ),
        Target::at_most(
            format!("herd {label}: errors other than retried UNAVAILABLE"),
            o.tally.errors as f64,
            0.0,
            "",
        ),
    ]
}

fn run_case(n: usize, c: &Case, pki: &Pki, csrs: &[Vec<u8>]) -> (Row, Outcome) {
    let b = c.budget;
    let env = InProcess::start(pki, false, |cfg| {
        cfg.authn.kubernetes.max_in_flight = b.in_flight;
        cfg.authn.kubernetes.qps = b.qps;
        cfg.authn.kubernetes.burst = b.burst;
        cfg.authn.kubernetes.local_verification = c.mode;
    });
    if c.mode != LocalVerification::Off {
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.server().metrics.kube.jwks_keys.get() == 0 {
            assert!(Instant::now() < deadline, "key set never loaded");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let kube = &env.kube.kube;
    kube.set_token_review_latency(REVIEW_LATENCY);
    let (n, give_up) = match (c.down, c.mode) {
        (true, LocalVerification::Off) => (n.min(DOWN_SAMPLE_PODS), DOWN_SAMPLE),
        _ => (n, GIVE_UP),
    };
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut spec = TokenSpec::new(NS, SA, &[AUDIENCE], Duration::from_secs(3600));
            spec.pod = Some(format!("web-{i}"));
            kube.mint(&spec)
        })
        .collect();
    if c.down {
        kube.set_outage(Outage::RefuseConnections);
    }
    let m = &env.server().metrics.kube;
    let reviews_before = kube.request_count(RequestKind::TokenReview);
    let refused_before = m.token_reviews_rejected.get();
    let t0 = Instant::now();
    let tally = stampede(&env.target, &tokens, csrs, give_up);
    let wall = t0.elapsed().as_secs_f64();
    let reviews = kube.request_count(RequestKind::TokenReview) - reviews_before;
    let refused = m.token_reviews_rejected.get() - refused_before;
    let fallbacks: u64 = certmint_k8s::metrics::NoAnswer::ALL
        .iter()
        .map(|&result| {
            m.token_local_fallbacks
                .get_or_create(&certmint_k8s::metrics::ResultLabel { result })
                .get()
        })
        .sum();
    let max_in_flight = kube.token_review_max_in_flight();
    kube.set_outage(Outage::None);

    let (p50, p99) = (
        percentile(&tally.latencies, 0.5) as f64 / 1000.0,
        percentile(&tally.latencies, 0.99) as f64 / 1000.0,
    );
    let mut note = format!(
        "local_verification {}, max_in_flight {}, qps {}, burst {}; {refused} reviews refused by back-pressure",
        c.mode.as_str(),
        b.in_flight,
        b.qps,
        b.burst
    );
    if c.down {
        note += "; API server refusing connections after ready";
    }
    if tally.errors > 0 {
        note += &format!(
            "; {} errors, first: {}",
            tally.errors,
            tally.first_error.as_deref().unwrap_or("?")
        );
    }
    let o = Outcome { wall, tally, n };
    let row = Row::new("herd", format!("{n} tokens, {}", c.label))
        .metric("wall", wall, "s")
        .metric("certified", o.tally.certified as f64, "")
        .metric("rate", o.rate(), "/s")
        .metric("reviews", reviews as f64, "")
        .metric("local fallbacks", fallbacks as f64, "")
        .metric("max in flight", max_in_flight as f64, "")
        .metric("retries", o.tally.retries as f64, "")
        .metric("errors", o.tally.errors as f64, "")
        .metric("pod p50", p50, "ms")
        .metric("pod p99", p99, "ms")
        .note(note);
    (row, o)
}

/// Every pod calls at once (one HTTP/2 connection per 100 pods) and retries UNAVAILABLE.
fn stampede(
    target: &load::Target,
    tokens: &[String],
    csrs: &[Vec<u8>],
    give_up: Duration,
) -> Tally {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime")
                .block_on(herd_calls(target, tokens, csrs, give_up))
        })
        .join()
        .expect("herd thread")
    })
}

async fn herd_calls(
    target: &load::Target,
    tokens: &[String],
    csrs: &[Vec<u8>],
    give_up: Duration,
) -> Tally {
    let mut clients = Vec::new();
    for _ in 0..tokens.len().div_ceil(STREAMS_PER_CONN) {
        clients.push(IdentityClient::new(load::connect(target).await));
    }
    let tally = RefCell::new(Tally::default());
    let give_up = Instant::now() + give_up;
    let pods = tokens.iter().enumerate().map(|(i, token)| {
        let mut client = clients[i % clients.len()].clone();
        let tally = &tally;
        async move {
            let start = Instant::now();
            while Instant::now() < give_up {
                let req = CertifyRequest {
                    identity: identity(),
                    token: token.clone().into_bytes(),
                    certificate_signing_request: csrs[i % csrs.len()].clone(),
                };
                let result = client.certify(req).await;
                {
                    let mut t = tally.borrow_mut();
                    match result {
                        Ok(_) => {
                            t.certified += 1;
                            t.latencies.push(start.elapsed().as_micros() as u32);
                            return;
                        }
                        Err(s) if s.code() == Code::Unavailable => t.retries += 1,
                        Err(s) => {
                            t.errors += 1;
                            t.first_error
                                .get_or_insert_with(|| format!("{:?}: {}", s.code(), s.message()));
                            return;
                        }
                    }
                }
                let backoff = Duration::from_millis(rand::random_range(20..60));
                tokio::time::sleep(backoff).await;
            }
        }
    });
    futures::future::join_all(pods).await;
    let mut t = tally.into_inner();
    t.latencies.sort_unstable();
    t
}
