//! The single mapping from [`CertifyError`] to a gRPC `Status` (DESIGN.md §3). It logs the
//! failure once, at the level the cause deserves, and answers with a short, safe message.
//! Under load a repeated failure is summarised (one line per interval with a count); at
//! debug level every failure is logged.

use std::sync::Arc;

use tonic::{Code, Status};

use certmint_core::logsum::{INTERVAL, Repeated};

use certmint_core::authn::AuthnError;
use certmint_core::ca::SignError;
use certmint_core::certify::CertifyError;
use certmint_core::impersonation::ImpersonationError;

use crate::metrics::CertifyResult;

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
pub fn to_status(identity: &str, err: &CertifyError, log: &FailureLog) -> (Status, CertifyResult) {
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
        CertifyError::Impersonation(ImpersonationError::NotSynced) => (
            Code::Unavailable,
            "pod list not loaded yet; retry".to_owned(),
        ),
        CertifyError::Impersonation(e) => (Code::PermissionDenied, e.to_string()),
        CertifyError::Sign(SignError::KeyUnavailable) => (
            Code::Unavailable,
            "issuer key unavailable (HSM); retry later".to_owned(),
        ),
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

/// The canonical name of a gRPC code, as audit records carry it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::Unavailable => "UNAVAILABLE",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The metric label for a gRPC code.
pub fn result_label(code: Code) -> CertifyResult {
    match code {
        Code::Ok => CertifyResult::Ok,
        Code::InvalidArgument => CertifyResult::InvalidArgument,
        Code::PermissionDenied => CertifyResult::PermissionDenied,
        Code::Unauthenticated => CertifyResult::Unauthenticated,
        Code::Unavailable => CertifyResult::Unavailable,
        _ => CertifyResult::Internal,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(c: &Captured) -> Vec<String> {
        let text = String::from_utf8_lossy(&c.0.lock().unwrap()).into_owned();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_herd_of_shed_calls_logs_two_lines_not_one_per_call() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let log = FailureLog::new();
        let shed = CertifyError::Authn(AuthnError::Unavailable(
            "too many token reviews in flight".into(),
        ));
        for i in 0..345 {
            let (status, label) = to_status(&format!("pod-{i}"), &shed, &log);
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(label, CertifyResult::Unavailable);
        }
        assert_eq!(lines(&captured).len(), 1, "{:?}", lines(&captured));
        assert_eq!(log.unavailable.flush(), 1);
        let all = lines(&captured);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[1].contains("344 more Certify calls answered UNAVAILABLE"));
        assert!(all[1].contains("too many token reviews in flight"));
    }
}
