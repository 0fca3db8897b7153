//! The issuance audit trail (issue 12): one JSON record per Certify outcome, hash-chained,
//! with periodic checkpoints signed by a dedicated audit key; a rotating file and/or
//! stdout; offline verification and search for `certmint audit`. No tonic, no kube.

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod body;
pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod find;
pub mod load;
pub mod metrics;
pub mod record;
pub mod sink;
pub mod verify;
pub mod writer;

pub use body::EncodedBody;
pub use config::{AuditConfig, OnFailure};
pub use writer::{AuditError, AuditLog};
