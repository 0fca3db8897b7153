//! PASS or FAIL: after warm-up, RSS and the server's own descriptors stay within 10 % of
//! their first judged sample, and its connections to the API server (a pool that follows
//! TokenReview concurrency) stay under the review limit; no unexpected error; every
//! rotation applied; the server survived.

use std::time::Duration;

use crate::chaos::Rotation;
use crate::sample::Sample;
use crate::tally::{Counts, Window};

pub const TOLERANCE: f64 = 0.10;
/// `authn.kubernetes.max_in_flight` (100 by default) plus the watches and other calls.
const API_CONNS: usize = 110;

pub struct Verdict {
    pub checks: Vec<(String, bool)>,
}

impl Verdict {
    pub fn pass(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    pub fn print(&self) {
        for (what, ok) in &self.checks {
            println!("  [{}] {what}", if *ok { "ok" } else { "FAIL" });
        }
        println!("{}", if self.pass() { "PASS" } else { "FAIL" });
    }
}

pub fn judge(
    samples: &[Sample],
    warmup: Duration,
    rotations: &[Rotation],
    counts: &Counts,
    server_alive: bool,
) -> Verdict {
    let judged: Vec<&Sample> = samples.iter().filter(|s| s.elapsed >= warmup).collect();
    let mut checks = Vec::new();
    checks.push(within(&judged, "RSS (MiB)", |s| s.rss_mib));
    checks.push(within(
        &judged,
        "descriptors other than API-server connections",
        |s| (s.fds - s.api_fds) as f64,
    ));
    let (lo, hi) = judged.iter().fold((usize::MAX, 0), |(lo, hi), s| {
        (lo.min(s.fds), hi.max(s.fds))
    });
    let api = judged.iter().map(|s| s.api_fds).max().unwrap_or(0);
    checks.push((
        format!(
            "API-server connections stay bounded: at most {api} (≤ {API_CONNS}); all descriptors {lo}–{hi}"
        ),
        api <= API_CONNS,
    ));
    checks.push((
        format!(
            "no unexpected error: {} unexpected of {} failures {:?}{}",
            counts.unexpected,
            counts.unexpected + counts.expected,
            counts.by_code,
            match counts.unexpected_samples.is_empty() {
                true => String::new(),
                false => format!("; first: {}", counts.unexpected_samples.join(" | ")),
            }
        ),
        counts.unexpected == 0,
    ));
    let applied = rotations.iter().filter(|r| r.applied_in.is_some()).count();
    let slowest = rotations.iter().filter_map(|r| r.applied_in).max();
    let problems: Vec<String> = rotations
        .iter()
        .filter_map(|r| Some(format!("{}: {}", r.name, r.problem.as_ref()?)))
        .collect();
    checks.push((
        format!(
            "every rotation applied: {applied}/{} (slowest {:.2} s){}",
            rotations.len(),
            slowest.unwrap_or_default().as_secs_f64(),
            if problems.is_empty() {
                String::new()
            } else {
                format!("; {}", problems.join("; "))
            }
        ),
        applied == rotations.len() && !rotations.is_empty(),
    ));
    checks.push(("the server process is still running".into(), server_alive));
    Verdict { checks }
}

/// Whether `value` stays within ±10 % of its first judged sample.
fn within(judged: &[&Sample], what: &str, value: impl Fn(&Sample) -> f64) -> (String, bool) {
    let Some(first) = judged.first() else {
        return (format!("{what}: no sample after warm-up"), false);
    };
    let base = value(first);
    let (lo, hi) = judged
        .iter()
        .map(|s| value(s))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let ok = lo >= base * (1.0 - TOLERANCE) && hi <= base * (1.0 + TOLERANCE);
    let text = format!(
        "{what} after warm-up within ±10 % of {base:.1}: min {lo:.1}, max {hi:.1} ({:+.1} % / {:+.1} %) over {} samples",
        (lo / base - 1.0) * 100.0,
        (hi / base - 1.0) * 100.0,
        judged.len()
    );
    (text, ok)
}

/// One line per fault injected: when, and how many calls it turned into UNAVAILABLE.
pub fn fault_lines(windows: &[Window], t0: std::time::Instant) -> Vec<String> {
    windows
        .iter()
        .map(|w| {
            let at = w.from.duration_since(t0).as_secs();
            let blamed = match w.allows_unavailable {
                true => format!(": {} calls answered UNAVAILABLE", w.unavailable),
                false => ": no error allowed".to_owned(),
            };
            format!("{}:{:02} {}{blamed}", at / 60, at % 60, w.name)
        })
        .collect()
}
