//! What happens to the server during the run: a new issuer (signed by the same anchor)
//! written to the Secret every minute, each checked as applied, and a TokenReview fault
//! every few minutes.

use std::time::{Duration, Instant};

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tonic::transport::Channel;

use crate::common::pki::Ca;
use crate::fake_kube::{FakeKube, Fault};
use crate::server::{self, Process};
use crate::tally::Tally;

/// How long a fault lasts, and where in its minute it starts (clear of the rotations).
pub const FAULT_FOR: Duration = Duration::from_secs(20);
pub const FAULT_OFFSET: Duration = Duration::from_secs(25);
/// A rotation not seen by then has failed.
const APPLY_WITHIN: Duration = Duration::from_secs(30);
const APPLIED: &str = "certmint_issuer_reloads_total{source=\"kubernetes\",result=\"applied\"}";

/// The faults, injected in turn.
#[derive(Clone, Copy, Debug)]
pub enum FaultKind {
    /// Every TokenReview answered after 2 s (under the 5 s review timeout): slower, no error.
    Slow,
    Status500,
    Status429,
    /// Every Secret and ConfigMap watch cut; the next rotation shows the re-watch.
    DropWatches,
    /// Every TokenReview answered after 7 s: past the 5 s review timeout.
    PastTimeout,
}

impl FaultKind {
    pub fn nth(i: usize) -> Self {
        use FaultKind::*;
        [Slow, Status500, Status429, DropWatches, PastTimeout][i % 5]
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Slow => "review latency 2s",
            FaultKind::Status500 => "review 500",
            FaultKind::Status429 => "review 429",
            FaultKind::DropWatches => "watches dropped",
            FaultKind::PastTimeout => "review latency 7s",
        }
    }

    /// Whether uncached tokens may get UNAVAILABLE (the API fails) during the fault.
    pub fn allows_unavailable(self) -> bool {
        matches!(
            self,
            FaultKind::Status500 | FaultKind::Status429 | FaultKind::PastTimeout
        )
    }

    pub fn apply(self, kube: &FakeKube) {
        match self {
            FaultKind::Slow => kube.set_token_review_latency(Duration::from_secs(2)),
            FaultKind::Status500 => kube.set_token_review_fault(Some(Fault::Status(500))),
            FaultKind::Status429 => kube.set_token_review_fault(Some(Fault::Status(429))),
            FaultKind::DropWatches => kube.drop_watches(),
            FaultKind::PastTimeout => kube.set_token_review_latency(Duration::from_secs(7)),
        }
    }

    pub fn clear(kube: &FakeKube, tally: &Tally) {
        kube.set_token_review_latency(Duration::ZERO);
        kube.set_token_review_fault(None);
        tally.fault_off();
    }
}

#[derive(Clone, Debug)]
pub struct Rotation {
    pub name: String,
    /// From the Secret write until the applied counter rose and a leaf came from it.
    pub applied_in: Option<Duration>,
    pub problem: Option<String>,
}

/// A client that certifies one workload, to see which issuer signs.
pub struct Probe {
    pub client: IdentityClient<Channel>,
    pub request: CertifyRequest,
}

impl Probe {
    /// The issuer CN of a freshly issued leaf.
    async fn issuer_cn(&mut self) -> Result<String, String> {
        let resp = self.client.certify(self.request.clone()).await;
        let leaf = resp
            .map_err(|s| format!("probe Certify: {:?}: {}", s.code(), s.message()))?
            .into_inner()
            .leaf_certificate;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| format!("probe leaf does not parse: {e}"))?;
        let cn = cert.issuer().iter_common_name().next();
        Ok(cn.and_then(|a| a.as_str().ok()).unwrap_or("").to_owned())
    }
}

/// Writes issuer number `n` (signed by `root`) to the Secret and waits until the server
/// counts it applied and signs with it.
pub async fn rotate(
    n: usize,
    root: &Ca,
    kube: &FakeKube,
    p: &Process,
    probe: &mut Probe,
) -> Rotation {
    let name = format!("soak issuer {n}");
    let issuer = root.issuer(&name);
    let before = applied(p).unwrap_or(0.0);
    let t0 = Instant::now();
    server::put_issuer(kube, &issuer);
    let mut problem = String::from("applied counter did not rise");
    while t0.elapsed() < APPLY_WITHIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if applied(p).unwrap_or(0.0) < before + 1.0 {
            continue;
        }
        match probe.issuer_cn().await {
            Ok(cn) if cn == name => {
                let applied_in = Some(t0.elapsed());
                return Rotation {
                    name,
                    applied_in,
                    problem: None,
                };
            }
            Ok(cn) => problem = format!("leaf still issued by {cn:?}"),
            Err(e) => problem = e,
        }
    }
    Rotation {
        name,
        applied_in: None,
        problem: Some(problem),
    }
}

fn applied(p: &Process) -> Option<f64> {
    metric(&p.metrics()?, APPLIED)
}

/// The value of the sample line `series` (name with labels, exactly as exposed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
