//! One row of the time series: the server's RSS, descriptors and tokio tasks, and what the
//! traffic saw since the previous row. Rows print as Markdown table lines as they come.

use std::time::{Duration, Instant};

use crate::chaos::metric;
use crate::fake_kube::{FakeKube, RequestKind};
use crate::fds;
use crate::load::percentile;
use crate::machine::rss_mib;
use crate::server::Process;
use crate::tally::Tally;

pub const HEADER: &str = "\
| elapsed | RSS MiB | fds (to API) | tasks | certs/s | p50 ms | p99 ms | OK | UNAVAILABLE (fault) | unexpected | skipped | reviews | cache hits | rotations | fault now |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

#[derive(Clone, Debug)]
pub struct Sample {
    pub elapsed: Duration,
    pub rss_mib: f64,
    pub fds: usize,
    /// Of `fds`, connections to the API server.
    pub api_fds: usize,
    pub tasks: Option<f64>,
    pub certs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: u64,
    pub expected: u64,
    pub unexpected: u64,
    pub skipped: u64,
    pub reviews: u64,
    pub hit_ratio: Option<f64>,
    pub rotations: (usize, usize),
    pub fault: Option<&'static str>,
}

impl Sample {
    pub fn row(&self) -> String {
        let secs = self.elapsed.as_secs();
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("?".into(), f);
        format!(
            "| {}:{:02} | {:.1} | {} ({}) | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
            secs / 60,
            secs % 60,
            self.rss_mib,
            self.fds,
            self.api_fds,
            opt(self.tasks, &|t| format!("{t:.0}")),
            self.certs_per_s,
            self.p50_ms,
            self.p99_ms,
            self.ok,
            self.expected,
            self.unexpected,
            self.skipped,
            self.reviews,
            opt(self.hit_ratio, &|h| format!("{:.1} %", h * 100.0)),
            self.rotations.0,
            self.rotations.1,
            self.fault.unwrap_or("-"),
        )
    }
}

/// Takes samples; remembers the previous one for rates.
pub struct Sampler {
    t0: Instant,
    last: (Instant, u64),
}

impl Sampler {
    pub fn new(t0: Instant) -> Self {
        Sampler { t0, last: (t0, 0) }
    }

    pub fn take(
        &mut self,
        p: &Process,
        kube: &FakeKube,
        tally: &Tally,
        rotations: (usize, usize),
    ) -> Sample {
        // Descriptors first: the metrics scrape below opens a connection of its own.
        let kube_port = kube.url().rsplit(':').next().and_then(|p| p.parse().ok());
        let (fds, api_fds) = fds::count(p.pid(), kube_port.unwrap_or(0));
        let (rss_mib, _) = rss_mib(p.pid());
        let text = p.metrics().unwrap_or_default();
        let tasks = metric(&text, "certmint_runtime_alive_tasks");
        let hit = metric(&text, "certmint_token_review_cache_total{result=\"hit\"}");
        let miss = metric(&text, "certmint_token_review_cache_total{result=\"miss\"}");
        let hit_ratio = match (hit, miss) {
            (Some(h), Some(m)) if h + m > 0.0 => Some(h / (h + m)),
            _ => None,
        };
        let now = Instant::now();
        let mut c = tally.counts();
        let mut lat = std::mem::take(&mut c.latencies);
        lat.sort_unstable();
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let certs_per_s = (c.ok - self.last.1) as f64 / dt;
        self.last = (now, c.ok);
        Sample {
            elapsed: now.duration_since(self.t0),
            rss_mib,
            fds,
            api_fds,
            tasks,
            certs_per_s,
            p50_ms: f64::from(percentile(&lat, 0.50)) / 1000.0,
            p99_ms: f64::from(percentile(&lat, 0.99)) / 1000.0,
            ok: c.ok,
            expected: c.expected,
            unexpected: c.unexpected,
            skipped: c.skipped,
            reviews: kube.request_count(RequestKind::TokenReview),
            hit_ratio,
            rotations,
            fault: tally.active(),
        }
    }
}
