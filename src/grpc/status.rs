//! The single mapping from [`CertifyError`] to a gRPC `Status` (DESIGN.md §3). It logs the
//! failure once, at the level the cause deserves, and answers with a short, safe message.
//! Under load a repeated failure is summarised (one line per interval with a count); at
//! debug level every failure is logged.

use std::sync::Arc;

use tonic::{Code, Status};

use crate::logsum::{INTERVAL, Repeated};

use crate::authn::AuthnError;
use crate::certify::CertifyError;

/// Summaries of repeated failures: UNAVAILABLE at warn, refusals at info.
pub struct FailureLog {
    unavailable: Arc<Repeated>,
    refused: Arc<Repeated>,
}

impl FailureLog {
    /// Starts the summary flushers on the current runtime.
    pub fn new() -> Self {
        let log = Self {
            unavailable: Repeated::new(
                "Certify calls answered UNAVAILABLE",
                tracing::Level::WARN,
                INTERVAL,
            ),
            refused: Repeated::new("Certify calls refused", tracing::Level::INFO, INTERVAL),
        };
        log.unavailable.spawn_flusher();
        log.refused.spawn_flusher();
        log
    }
}

impl Default for FailureLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Maps, logs once, and returns the status plus the metric result label.
pub fn to_status(identity: &str, err: &CertifyError, log: &FailureLog) -> (Status, &'static str) {
    let (code, message): (Code, String) = match err {
        CertifyError::IssuerNotReady | CertifyError::IssuerExpired => {
            (Code::Unavailable, err.to_string())
        }
        CertifyError::DeadlineExceeded => {
            (Code::Unavailable, "request timed out; retry".to_owned())
        }
        CertifyError::InvalidRequest(_) => (Code::InvalidArgument, err.to_string()),
        CertifyError::Csr(e) if e.is_policy() => (Code::PermissionDenied, e.to_string()),
        CertifyError::Csr(e) => (Code::InvalidArgument, e.to_string()),
        CertifyError::Authn(AuthnError::Unauthenticated(_)) => {
            (Code::Unauthenticated, err.to_string())
        }
        CertifyError::Authn(AuthnError::Unavailable(_)) => (
            Code::Unavailable,
            "token review unavailable; retry later".to_owned(),
        ),
        CertifyError::IdentityMismatch => (Code::PermissionDenied, err.to_string()),
        CertifyError::Sign(_) => (Code::Internal, "signing failed".to_owned()),
    };
    let reason = err.to_string();
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    match code {
        Code::Internal => tracing::error!(identity = ?identity, reason, "certify failed"),
        Code::Unavailable if debug || log.unavailable.record(&reason) => {
            tracing::warn!(identity = ?identity, reason, "certify failed")
        }
        Code::Unavailable => {}
        _ if debug || log.refused.record(&reason) => {
            tracing::info!(identity = ?identity, reason, "certify refused")
        }
        _ => {}
    }
    (Status::new(code, message), result_label(code))
}

/// The metric label for a gRPC code.
pub fn result_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::InvalidArgument => "invalid_argument",
        Code::PermissionDenied => "permission_denied",
        Code::Unauthenticated => "unauthenticated",
        Code::Unavailable => "unavailable",
        _ => "internal",
    }
}
