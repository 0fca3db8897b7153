//! Keeps logs readable under load: a condition that repeats (shed calls, API errors,
//! refusals) is logged once when it starts, then as one summary line per interval with a
//! count. Metrics keep the exact numbers; this only bounds the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often summaries are written.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Distinct reasons tracked at once; further ones are summarised together.
const MAX_REASONS: usize = 64;
const OTHER: &str = "other reasons";

/// One repeated condition, summarised by reason.
pub struct Repeated {
    /// What is counted, as a plural noun phrase ("Certify calls answered UNAVAILABLE").
    what: &'static str,
    /// Level of the summary lines (warn or info).
    level: tracing::Level,
    interval: Duration,
    /// Reasons seen in this or the previous interval: the count not yet logged, and
    /// whether the reason was first seen in the current interval.
    counts: Mutex<HashMap<String, (u64, bool)>>,
}

impl Repeated {
    pub fn new(what: &'static str, level: tracing::Level, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            what,
            level,
            interval,
            counts: Mutex::default(),
        })
    }

    /// Records one occurrence. Returns true when the caller should log this occurrence
    /// itself (the reason was quiet for a whole interval); otherwise it is counted and
    /// appears in the next summary line.
    pub fn record(&self, reason: &str) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, _)) = counts.get_mut(reason) {
            *n += 1;
            return false;
        }
        if counts.len() >= MAX_REASONS {
            counts.entry(OTHER.to_owned()).or_insert((0, true)).0 += 1;
            return false;
        }
        counts.insert(reason.to_owned(), (0, true));
        true
    }

    /// Writes one line per reason counted since the last flush and forgets reasons that
    /// stayed quiet for a whole interval. Returns the number of lines written.
    pub fn flush(&self) -> usize {
        let lines: Vec<(String, u64)> = {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.retain(|_, (n, fresh)| *n > 0 || std::mem::take(fresh));
            counts
                .iter_mut()
                .filter(|(_, (n, _))| *n > 0)
                .map(|(r, (n, _))| (r.clone(), std::mem::take(n)))
                .collect()
        };
        let secs = self.interval.as_secs();
        for (reason, count) in &lines {
            let what = self.what;
            if self.level == tracing::Level::INFO {
                tracing::info!(count, reason = %reason, "{count} more {what} in the last {secs} s: {reason}");
            } else {
                tracing::warn!(count, reason = %reason, "{count} more {what} in the last {secs} s: {reason}");
            }
        }
        lines.len()
    }

    /// Flushes every interval until the last other owner drops this summary.
    pub fn spawn_flusher(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.interval;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(s) => s.flush(),
                    None => return,
                };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_is_logged_then_repeats_are_counted() {
        let r = Repeated::new("calls", tracing::Level::WARN, INTERVAL);
        assert!(r.record("shed"));
        for _ in 0..344 {
            assert!(!r.record("shed"));
        }
        assert!(r.record("timeout"), "another reason is logged on its own");
        assert_eq!(r.flush(), 1, "one summary line: 344 repeats of shed");
        assert!(!r.record("timeout"), "seen in this interval: counted");
        assert_eq!(r.flush(), 1, "one summary line: 1 repeat of timeout");
        assert_eq!(r.flush(), 0, "nothing new");
        assert!(r.record("shed"), "quiet for a whole interval: logged again");
    }

    #[test]
    fn distinct_reasons_are_bounded() {
        let r = Repeated::new("calls", tracing::Level::WARN, INTERVAL);
        for i in 0..1000 {
            r.record(&format!("reason {i}"));
        }
        for i in 0..1000 {
            r.record(&format!("reason {i}"));
        }
        let n = r.counts.lock().unwrap().len();
        assert!(n <= MAX_REASONS + 1, "{n} reasons tracked");
        assert!(r.flush() <= MAX_REASONS + 1);
    }
}
