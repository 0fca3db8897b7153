//! The single mapping from [`CertifyError`] to a gRPC `Status` (DESIGN.md §3). It logs the
//! failure once, at the level the cause deserves, and answers with a short, safe message.

use tonic::{Code, Status};

use crate::authn::AuthnError;
use crate::certify::CertifyError;

/// Maps, logs once, and returns the status plus the metric result label.
pub fn to_status(identity: &str, err: &CertifyError) -> (Status, &'static str) {
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
    match code {
        Code::Internal => tracing::error!(identity = ?identity, reason, "certify failed"),
        Code::Unavailable => tracing::warn!(identity = ?identity, reason, "certify failed"),
        _ => tracing::info!(identity = ?identity, reason, "certify refused"),
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
