//! What the traffic saw, shared between the load thread and the sampler: counts by gRPC
//! code, which failures fell inside a fault window (expected) and which did not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::Code;

/// Failures that start this long after a fault ends are still blamed on it: a review
/// started during the fault ends by the 5 s review timeout, and the reviews of tokens that
/// missed the cache during the fault come in a burst just after it.
pub const GRACE: Duration = Duration::from_secs(10);
/// Messages of unexpected failures kept for the report.
const KEEP: usize = 5;

/// A period during which the fake API server misbehaved.
#[derive(Clone, Debug)]
pub struct Window {
    pub name: &'static str,
    pub from: Instant,
    /// `None` while the fault is on.
    pub to: Option<Instant>,
    /// The API failing: UNAVAILABLE is the documented answer for an uncached token.
    pub allows_unavailable: bool,
    /// UNAVAILABLE answers blamed on this fault.
    pub unavailable: u64,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub ok: u64,
    /// Failures by gRPC code name, expected or not.
    pub by_code: BTreeMap<String, u64>,
    pub expected: u64,
    pub unexpected: u64,
    pub unexpected_samples: Vec<String>,
    /// Calls not started because `MAX_IN_FLIGHT` were already waiting (server too slow).
    pub skipped: u64,
    /// Latencies of successful calls since the last sample, µs.
    pub latencies: Vec<u32>,
}

#[derive(Clone, Default)]
pub struct Tally {
    counts: Arc<Mutex<Counts>>,
    windows: Arc<Mutex<Vec<Window>>>,
}

impl Tally {
    pub fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn windows(&self) -> MutexGuard<'_, Vec<Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fault_on(&self, name: &'static str, allows_unavailable: bool) {
        self.windows().push(Window {
            name,
            from: Instant::now(),
            to: None,
            allows_unavailable,
            unavailable: 0,
        });
    }

    pub fn fault_off(&self) {
        if let Some(w) = self.windows().iter_mut().rev().find(|w| w.to.is_none()) {
            w.to = Some(Instant::now());
        }
    }

    /// The fault on right now, if any.
    pub fn active(&self) -> Option<&'static str> {
        self.windows()
            .iter()
            .rev()
            .find(|w| w.to.is_none())
            .map(|w| w.name)
    }

    /// Every fault so far, with the failures blamed on it.
    pub fn windows_snapshot(&self) -> Vec<Window> {
        self.windows().clone()
    }

    pub fn ok(&self, latency: Duration) {
        let mut c = self.counts();
        c.ok += 1;
        c.latencies
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    /// Counts a failed call that ran from `start` until now.
    pub fn failed(&self, start: Instant, code: Code, message: &str) {
        let end = Instant::now();
        let expected = code == Code::Unavailable
            && self
                .windows()
                .iter_mut()
                .rev()
                .find(|w| {
                    w.allows_unavailable
                        && w.from <= end
                        && w.to.is_none_or(|to| start <= to + GRACE)
                })
                .map(|w| w.unavailable += 1)
                .is_some();
        let mut c = self.counts();
        *c.by_code.entry(format!("{code:?}")).or_default() += 1;
        if expected {
            c.expected += 1;
        } else {
            c.unexpected += 1;
            if c.unexpected_samples.len() < KEEP {
                c.unexpected_samples.push(format!("{code:?}: {message}"));
            }
        }
    }
}
