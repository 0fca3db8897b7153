//! The `audit:` section of the configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use certmint_core::settings::{SettingError as ConfigError, duration, invalid};

/// What happens to Certify when a record cannot be written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Issue nothing (UNAVAILABLE), report not ready, until the sink writes again.
    #[default]
    Refuse,
    /// Keep issuing, count the records lost and log an error once per interval.
    Continue,
}

/// `audit:` — the issuance audit trail (docs/operations.md, "Audit").
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    pub enabled: bool,
    /// The name records carry; default `$POD_NAME`, then `$HOSTNAME`, then `certmint`.
    pub replica: Option<String>,
    pub on_failure: OnFailure,
    /// Write records to standard output (diagnostic logs go to standard error).
    pub stdout: bool,
    pub file: Option<FileSinkConfig>,
    pub checkpoint: CheckpointConfig,
    /// Records waiting for the writer; a full queue makes Certify wait.
    pub queue: usize,
}

/// A file sink with size-based rotation: `path`, then `path.1` (newest) … `path.KEEP`.
/// `{replica}` in the path is replaced by the replica name.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Bytes; the file is rotated before a write would pass this.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: usize,
}

/// Checkpoints: every `interval` or `records` records, whichever comes first.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    pub records: u64,
    /// PKCS#8 PEM private key (ECDSA P-256 or Ed25519); unset = unsigned checkpoints.
    pub key: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            replica: None,
            on_failure: OnFailure::Refuse,
            stdout: false,
            file: None,
            checkpoint: CheckpointConfig::default(),
            queue: 4096,
        }
    }
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        Self {
            path: "/var/lib/certmint/audit/audit.jsonl".into(),
            max_size: 100 * 1024 * 1024,
            keep: 10,
        }
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            records: 1000,
            key: None,
        }
    }
}

impl FileSinkConfig {
    /// The settings with `{replica}` in the path replaced (one directory per replica on a
    /// shared volume).
    pub fn for_replica(&self, replica: &str) -> Self {
        let path = self.path.to_string_lossy().replace("{replica}", replica);
        Self {
            path: path.into(),
            ..self.clone()
        }
    }
}

impl AuditConfig {
    /// Checks the section; nothing is checked while auditing is off.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !self.stdout && self.file.is_none() {
            return Err(invalid(
                "audit",
                "auditing is enabled without a sink; set audit.stdout: true or audit.file.path",
            ));
        }
        if let Some(f) = &self.file {
            if f.path.as_os_str().is_empty() {
                return Err(invalid("audit.file.path", "must not be empty"));
            }
            if f.max_size < 4096 {
                return Err(invalid(
                    "audit.file.max_size",
                    "must be at least 4096 bytes",
                ));
            }
            if !(1..=1000).contains(&f.keep) {
                return Err(invalid("audit.file.keep", "must be between 1 and 1000"));
            }
        }
        let c = &self.checkpoint;
        if c.interval < Duration::from_secs(1) || c.records == 0 {
            return Err(invalid(
                "audit.checkpoint",
                "interval must be at least 1s and records positive",
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(invalid("audit.queue", "must be between 1 and 1000000"));
        }
        if self
            .replica
            .as_deref()
            .is_some_and(|r| r.is_empty() || r.len() > 253)
        {
            return Err(invalid("audit.replica", "must be 1 to 253 bytes"));
        }
        Ok(())
    }

    /// The replica name records carry.
    pub fn replica_name(&self) -> String {
        let env = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v: &String| !v.is_empty() && v.len() <= 253)
        };
        self.replica
            .clone()
            .or_else(|| env("POD_NAME"))
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_else(|| "certmint".to_owned())
    }
}
