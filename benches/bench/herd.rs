//! Section 4, the herd: N pods start at once, each with its own token, against the fake API
//! server answering TokenReviews after 5 ms. Clients retry UNAVAILABLE after a short
//! jittered backoff, as linkerd2-proxy does. Measures the wall time until every pod is
//! certified, the TokenReviews made and the most in flight at once.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tonic::Code;

use super::args::Options;
use super::fixtures::{NS, Pki, SA, identity};
use super::load::{self, percentile};
use super::report::{Row, Target};
use super::server::InProcess;
use crate::common::AUDIENCE;
use crate::fake_kube::{RequestKind, TokenSpec};

const REVIEW_LATENCY: Duration = Duration::from_millis(5);
/// The server's default stream limit: one connection per this many pods.
const STREAMS_PER_CONN: usize = 100;
/// A herd still running after this long is reported as incomplete.
const GIVE_UP: Duration = Duration::from_secs(600);

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

pub fn run(opts: &Options, pki: &Pki, csrs: &[Vec<u8>]) -> (Vec<Row>, Vec<Target>) {
    let n = opts.herd;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (label, budget) in [("defaults", DEFAULTS), ("raised qps", RAISED)] {
        let (row, t) = case(n, label, budget, pki, csrs);
        rows.push(row);
        targets.extend(t);
    }
    (rows, targets)
}

fn case(n: usize, label: &str, b: Budget, pki: &Pki, csrs: &[Vec<u8>]) -> (Row, Vec<Target>) {
    let env = InProcess::start(pki, false, |c| {
        c.authn.kubernetes.max_in_flight = b.in_flight;
        c.authn.kubernetes.qps = b.qps;
        c.authn.kubernetes.burst = b.burst;
    });
    let kube = &env.kube.kube;
    kube.set_token_review_latency(REVIEW_LATENCY);
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut spec = TokenSpec::new(NS, SA, &[AUDIENCE], Duration::from_secs(3600));
            spec.pod = Some(format!("web-{i}"));
            kube.mint(&spec)
        })
        .collect();
    let reviews_before = kube.request_count(RequestKind::TokenReview);
    let refused_before = env.server().metrics.token_reviews_rejected.get();
    let t0 = Instant::now();
    let tally = stampede(&env.target, &tokens, csrs);
    let wall = t0.elapsed().as_secs_f64();
    let reviews = kube.request_count(RequestKind::TokenReview) - reviews_before;
    let refused = env.server().metrics.token_reviews_rejected.get() - refused_before;
    let max_in_flight = kube.token_review_max_in_flight();
    let predicted = n.saturating_sub(b.burst as usize) as f64 / f64::from(b.qps);

    let lat_ms = |q| percentile(&tally.latencies, q) as f64 / 1000.0;
    let name = format!("{n} tokens, {label}");
    let mut note = format!(
        "max_in_flight {}, qps {}, burst {}: wall ≈ (N − burst)/qps = {predicted:.1} s; \
         {refused} refused by back-pressure and retried",
        b.in_flight, b.qps, b.burst
    );
    if tally.errors > 0 {
        note += &format!(
            "; {} errors, first: {}",
            tally.errors,
            tally.first_error.as_deref().unwrap_or("?")
        );
    }
    let row = Row::new("herd", name)
        .metric("wall", wall, "s")
        .metric("certified", tally.certified as f64, "")
        .metric("reviews", reviews as f64, "")
        .metric("max in flight", max_in_flight as f64, "")
        .metric("retries", tally.retries as f64, "")
        .metric("errors", tally.errors as f64, "")
        .metric("pod p50", lat_ms(0.5), "ms")
        .metric("pod p99", lat_ms(0.99), "ms")
        .note(note);
    let targets = vec![
        Target::at_least(
            format!("herd {label}: pods certified / N"),
            tally.certified as f64 / n as f64,
            1.0,
            "x",
        ),
        Target::at_most(
            format!("herd {label}: TokenReviews / distinct tokens"),
            reviews as f64 / n as f64,
            1.0,
            "x",
        ),
        Target::at_most(
            format!("herd {label}: max reviews in flight (limit)"),
            max_in_flight as f64,
            b.in_flight as f64,
            "",
        ),
        Target::at_most(
            format!("herd {label}: errors other than retried UNAVAILABLE"),
            tally.errors as f64,
            0.0,
            "",
        ),
    ];
    (row, targets)
}

/// Every pod calls at once (one HTTP/2 connection per 100 pods) and retries UNAVAILABLE.
fn stampede(target: &load::Target, tokens: &[String], csrs: &[Vec<u8>]) -> Tally {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime")
                .block_on(herd_calls(target, tokens, csrs))
        })
        .join()
        .expect("herd thread")
    })
}

async fn herd_calls(target: &load::Target, tokens: &[String], csrs: &[Vec<u8>]) -> Tally {
    let mut clients = Vec::new();
    for _ in 0..tokens.len().div_ceil(STREAMS_PER_CONN) {
        clients.push(IdentityClient::new(load::connect(target).await));
    }
    let tally = RefCell::new(Tally::default());
    let give_up = Instant::now() + GIVE_UP;
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
