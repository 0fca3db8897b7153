//! What every crate's settings type shares: the error that names a setting, and the
//! duration syntax of the configuration file (`90s`, `5m`, `24h`, `1h30m`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// One setting with a value that cannot be used; the message says what would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct SettingError {
    /// The setting's path in the configuration file, e.g. `audit.file.keep`.
    pub setting: &'static str,
    pub message: String,
}

/// A [`SettingError`] for `setting`.
pub fn invalid(setting: &'static str, message: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        message: message.into(),
    }
}

/// Deserializes durations written like `24h`, `90s`, `500ms`, `1h30m`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration ({e}); write e.g. 90s, 5m or 24h"
        ))
    })
}

/// Parses a duration flag value.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct D {
        #[serde(deserialize_with = "duration")]
        d: Duration,
    }

    #[test]
    fn reads_compound_durations_and_names_bad_ones() {
        let ok: D = serde_json::from_str(r#"{"d":"1h30m"}"#).unwrap();
        assert_eq!(ok.d, Duration::from_secs(5400));
        let bad = serde_json::from_str::<D>(r#"{"d":"soon"}"#).err().unwrap();
        assert!(bad.to_string().contains("write e.g. 90s"), "{bad}");
        assert_eq!(
            invalid("audit.queue", "must be positive").to_string(),
            "invalid setting audit.queue: must be positive"
        );
    }
}
