//! When a repeated refusal deserves a log line: the first time a content is refused, then
//! at most once per reload interval as a reminder. Metrics count every attempt.

use std::time::{Duration, SystemTime};

/// Remembers the last refused content (by digest) and when it was last reported.
#[derive(Debug)]
pub struct Reminder {
    interval: Duration,
    last: Option<([u8; 32], SystemTime)>,
}

impl Reminder {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// True when `key` was not the last refused content, or its last report is at least
    /// one interval old. A true answer counts as a report.
    pub fn due(&mut self, key: [u8; 32], now: SystemTime) -> bool {
        let due = match self.last {
            Some((k, at)) if k == key => now
                .duration_since(at)
                .map_or(true, |since| since >= self.interval),
            _ => true,
        };
        if due {
            self.last = Some((key, now));
        }
        due
    }

    /// Forgets the last refusal (something was accepted since).
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_new_content_at_once_and_repeats_once_per_interval() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut r = Reminder::new(Duration::from_secs(60));
        assert!(r.due([1; 32], t0));
        assert!(!r.due([1; 32], t0 + Duration::from_secs(1)));
        assert!(!r.due([1; 32], t0 + Duration::from_secs(59)));
        assert!(r.due([2; 32], t0 + Duration::from_secs(59)), "new content");
        assert!(r.due([1; 32], t0 + Duration::from_secs(60)), "changed back");
        assert!(!r.due([1; 32], t0 + Duration::from_secs(119)));
        assert!(r.due([1; 32], t0 + Duration::from_secs(120)), "reminder");
        r.clear();
        assert!(r.due([1; 32], t0 + Duration::from_secs(121)));
    }
}
