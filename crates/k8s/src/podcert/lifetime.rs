//! Lifetime arithmetic of pod certificates: the span asked of the CA and when the kubelet
//! should refresh. Pure, with the clock and the jitter passed in.

use std::time::{Duration, SystemTime};

/// The API's floor on notAfter − notBefore, and certmint's.
pub const MIN_SPAN: Duration = Duration::from_secs(3600);
/// The API's ceiling on `maxExpirationSeconds` (91 days).
pub const MAX_SPAN: Duration = Duration::from_secs(7_862_400);
/// What the API server defaults `maxExpirationSeconds` to.
pub const DEFAULT_MAX: Duration = Duration::from_secs(86_400);
/// `beginRefreshAt` stays this far inside the validity period.
const REFRESH_MARGIN: Duration = Duration::from_secs(600);

/// notAfter − notBefore to ask for: min(`maxExpirationSeconds`, `issuance.lifetime`),
/// never below one hour. Err for a `maxExpirationSeconds` the API would not have admitted.
pub fn span(max_expiration_seconds: Option<i32>, configured: Duration) -> Result<Duration, String> {
    let max = match max_expiration_seconds {
        None => DEFAULT_MAX,
        Some(s) => match u64::try_from(s).map(Duration::from_secs) {
            Ok(d) if (MIN_SPAN..=MAX_SPAN).contains(&d) => d,
            _ => {
                return Err(format!(
                    "maxExpirationSeconds {s} is outside 3600..=7862400"
                ));
            }
        },
    };
    Ok(max.min(configured).max(MIN_SPAN))
}

/// `beginRefreshAt`: `fraction` of the way through [not_before, not_after], moved by
/// `jitter` (in −1..=1) times 5 % of the span, and kept 10 minutes inside both ends.
pub fn refresh_at(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction: f64,
    jitter: f64,
) -> SystemTime {
    let span = not_after
        .duration_since(not_before)
        .unwrap_or_default()
        .as_secs_f64();
    let at = span * (fraction + 0.05 * jitter.clamp(-1.0, 1.0));
    let margin = REFRESH_MARGIN.as_secs_f64().min(span / 2.0);
    let at = at.clamp(margin, span - margin);
    // Whole seconds: metav1.Time carries no fraction.
    not_before + Duration::from_secs(at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const H: u64 = 3600;

    #[test]
    fn span_is_the_smaller_limit_and_never_below_an_hour() {
        let day = Duration::from_secs(24 * H);
        assert_eq!(span(None, day).unwrap(), day);
        assert_eq!(span(Some(7200), day).unwrap(), Duration::from_secs(7200));
        assert_eq!(span(Some(7_862_400), day).unwrap(), day);
        // A configured lifetime under an hour is raised to the API's floor.
        assert_eq!(span(None, Duration::from_secs(600)).unwrap(), MIN_SPAN);
        assert!(span(Some(3599), day).is_err());
        assert!(span(Some(-1), day).is_err());
        assert!(span(Some(7_862_401), day).is_err());
    }

    #[test]
    fn refresh_is_at_the_fraction_with_bounded_jitter() {
        let nb = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let na = nb + Duration::from_secs(24 * H);
        assert_eq!(
            refresh_at(nb, na, 0.5, 0.0),
            nb + Duration::from_secs(12 * H)
        );
        let early = refresh_at(nb, na, 0.5, -1.0);
        let late = refresh_at(nb, na, 0.5, 1.0);
        assert_eq!(early, nb + Duration::from_secs(12 * H - 4320));
        assert_eq!(late, nb + Duration::from_secs(12 * H + 4320));
        // A one-hour certificate still refreshes 10 minutes inside both ends.
        let short = nb + Duration::from_secs(H);
        assert!(refresh_at(nb, short, 0.8, 1.0) <= short - Duration::from_secs(600));
        assert!(refresh_at(nb, short, 0.3, -1.0) >= nb + Duration::from_secs(600));
    }
}
