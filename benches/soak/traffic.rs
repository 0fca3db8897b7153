//! The load: Certify at a fixed rate (open loop: calls start on schedule whatever the
//! latency), from a pool of distinct pod tokens in which a few pods are replaced every
//! second, so that the server sees TokenReview cache hits and misses (new pods, and cached
//! reviews expiring after the 60 s cache TTL), over 8 TLS connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tokio::time::MissedTickBehavior;

use crate::common::{AUDIENCE, linkerd_name};
use crate::fake_kube::{FakeKube, TokenSpec};
use crate::load::{self, Target};
use crate::tally::Tally;

pub const POD_NS: &str = "shop";
pub const ACCOUNTS: [&str; 4] = ["web", "api", "db", "cache"];
const CONNS: usize = 8;
/// More calls than this waiting means the server fell behind: new ones are skipped.
const MAX_IN_FLIGHT: usize = 512;
/// Pods join over this long at the start (a cold start of 1000 pods at once is the herd
/// benchmark's case, shed by the TokenReview budget), which also spreads cache expiries.
pub const RAMP: Duration = Duration::from_secs(60);
/// New pods per second: each replaces a random pod of the pool with a new token.
pub const NEW_PODS_PER_SEC: f64 = 5.0;

/// Pod tokens (service-account index, token), and CSRs per service account.
pub struct Pool {
    pub kube: FakeKube,
    pub tokens: Vec<(usize, String)>,
    pub csrs: Vec<Vec<Vec<u8>>>,
    pub ttl: Duration,
    minted: usize,
}

impl Pool {
    pub fn new(kube: FakeKube, size: usize, csrs: Vec<Vec<Vec<u8>>>, ttl: Duration) -> Self {
        let mut pool = Pool {
            kube,
            tokens: Vec::with_capacity(size),
            csrs,
            ttl,
            minted: 0,
        };
        for i in 0..size {
            let sa = i % ACCOUNTS.len();
            let token = pool.mint(sa);
            pool.tokens.push((sa, token));
        }
        pool
    }

    pub fn mint(&mut self, sa: usize) -> String {
        self.minted += 1;
        let mut spec = TokenSpec::new(POD_NS, ACCOUNTS[sa], &[AUDIENCE], self.ttl);
        spec.pod = Some(format!("{}-{}", ACCOUNTS[sa], self.minted));
        self.kube.mint(&spec)
    }

    /// A random running pod is replaced by a new one (new token, same service account).
    fn new_pod(&mut self, running: usize) {
        let i = rand::random_range(0..running);
        self.tokens[i].1 = self.mint(self.tokens[i].0);
    }

    /// The next call: from a random one of the first `running` pods.
    fn request(&mut self, n: u64, running: usize) -> CertifyRequest {
        let i = rand::random_range(0..running);
        let sa = self.tokens[i].0;
        let csrs = &self.csrs[sa];
        CertifyRequest {
            identity: linkerd_name(POD_NS, ACCOUNTS[sa]),
            token: self.tokens[i].1.clone().into_bytes(),
            certificate_signing_request: csrs[n as usize % csrs.len()].clone(),
        }
    }
}

/// Runs the load on its own thread until `until` or `stop`; returns calls started.
pub fn spawn(
    target: Target,
    mut pool: Pool,
    rate: f64,
    until: Instant,
    stop: Arc<AtomicBool>,
    tally: Tally,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("load runtime");
        rt.block_on(async move {
            let mut clients = Vec::new();
            for _ in 0..CONNS {
                clients.push(IdentityClient::new(load::connect(&target).await));
            }
            let in_flight = Arc::new(AtomicUsize::new(0));
            let (t0, mut started, mut new_pods) = (Instant::now(), 0u64, 0u64);
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let elapsed = t0.elapsed().as_secs_f64();
                let size = pool.tokens.len();
                let running =
                    ((size as f64 * elapsed / RAMP.as_secs_f64()) as usize).clamp(1, size);
                while new_pods < (elapsed * NEW_PODS_PER_SEC) as u64 {
                    new_pods += 1;
                    pool.new_pod(running);
                }
                let due = (elapsed * rate) as u64;
                while started < due {
                    started += 1;
                    if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                        tally.counts().skipped += 1;
                        continue;
                    }
                    let req = pool.request(started, running);
                    let mut client = clients[started as usize % CONNS].clone();
                    let (tally, in_flight) = (tally.clone(), in_flight.clone());
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let t = Instant::now();
                        match client.certify(req).await {
                            Ok(r) if !r.get_ref().leaf_certificate.is_empty() => {
                                tally.ok(t.elapsed())
                            }
                            Ok(_) => tally.failed(t, tonic::Code::Internal, "empty leaf"),
                            Err(s) => tally.failed(t, s.code(), s.message()),
                        }
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
            // Let the last calls finish (bounded: the server answers within 10 s).
            let drain = Instant::now() + Duration::from_secs(30);
            while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            started
        })
    })
}
