//! The `hsm:` section: which PKCS#11 module certmint loads and where its PIN is. Both come
//! from the configuration only, never from an issuer Secret: whoever may write the Secret
//! must not choose a library for certmint to load.

use std::path::PathBuf;

use serde::Deserialize;

use certmint_core::settings::{SettingError, invalid};

/// `hsm:` — keys in a PKCS#11 token (docs/operations.md, "Keys in an HSM").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// The vendor's PKCS#11 library (`.so`).
    pub module: PathBuf,
    /// A file holding the token's user PIN (a mounted Secret); read at start and whenever
    /// a login is needed.
    pub pin_file: PathBuf,
    /// Sessions kept open per token for signing: concurrent signatures at most. Default:
    /// the number of CPUs, at least 8 (signing runs on the server's worker threads, one
    /// per CPU, so no worker ever waits for a session).
    #[serde(default = "default_sessions")]
    pub sessions: usize,
}

pub fn default_sessions() -> usize {
    std::thread::available_parallelism().map_or(8, |n| n.get().max(8))
}

impl HsmConfig {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.module.as_os_str().is_empty() {
            return Err(invalid(
                "hsm.module",
                "is empty; name the PKCS#11 library (.so)",
            ));
        }
        if self.pin_file.as_os_str().is_empty() {
            return Err(invalid(
                "hsm.pin_file",
                "is empty; name the file holding the PIN",
            ));
        }
        if !(1..=256).contains(&self.sessions) {
            return Err(invalid("hsm.sessions", "must be between 1 and 256"));
        }
        Ok(())
    }
}
