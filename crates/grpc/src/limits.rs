//! The `limits:` section: what one connection and one call may use.

use std::time::Duration;

use certmint_core::settings::{SettingError, duration, invalid};
use serde::Deserialize;

/// Bounds on connections, messages, calls and shutdown.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    pub max_message_size: usize,
    pub max_concurrent_streams: u32,
    #[serde(deserialize_with = "duration")]
    pub keepalive_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// A TLS handshake must finish within this of the accept.
    #[serde(deserialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// The HTTP/2 connection preface must arrive within this of the accept (plaintext) or
    /// of the finished handshake (TLS): a silent or trickling connection is closed.
    #[serde(deserialize_with = "duration")]
    pub preface_timeout: Duration,
    /// Open gRPC connections (including handshakes); further ones are accepted and closed.
    /// Keep it below the file-descriptor limit.
    pub max_connections: usize,
    /// Largest request header block (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE), bytes.
    pub max_header_list_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_size: 64 * 1024,
            max_concurrent_streams: 100,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(25),
            handshake_timeout: Duration::from_secs(10),
            preface_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_header_list_size: 16 * 1024,
        }
    }
}

impl Limits {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        let l = self;
        if l.request_timeout.is_zero() {
            return Err(invalid("limits.request_timeout", "must be positive"));
        }
        if !(1024..=4 * 1024 * 1024).contains(&l.max_message_size) {
            return Err(invalid(
                "limits.max_message_size",
                "must be between 1024 and 4194304 bytes",
            ));
        }
        if l.max_concurrent_streams == 0 {
            return Err(invalid("limits.max_concurrent_streams", "must be positive"));
        }
        if l.handshake_timeout.is_zero() || l.preface_timeout.is_zero() {
            return Err(invalid(
                "limits.handshake_timeout/preface_timeout",
                "must be positive",
            ));
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be positive"));
        }
        if !(1024..=1024 * 1024).contains(&l.max_header_list_size) {
            return Err(invalid(
                "limits.max_header_list_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        Ok(())
    }
}
