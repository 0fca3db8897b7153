//! The HSM's metrics: signatures by result, errors by kind, and the session pool.

use certmint_core::label_enum;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

label_enum! {
    /// How a signature request ended.
    pub enum SignResult { Ok => "ok", Error => "error", Unavailable => "unavailable" }
}

label_enum! {
    /// What went wrong with the token.
    pub enum ErrorKind {
        /// The token left its slot or its object/session handles became invalid.
        TokenGone => "token_gone",
        /// The token logged out (one logout logs out every session of the process).
        LoggedOut => "logged_out",
        /// The PIN was refused (never retried until the PIN file changes).
        PinIncorrect => "pin_incorrect",
        /// The key object is not on the token.
        KeyMissing => "key_missing",
        /// Any other module error.
        Module => "module",
        /// Every session was busy for longer than a signature may wait.
        PoolExhausted => "pool_exhausted",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: SignResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: ErrorKind,
}

/// Registered into the registry the binary hands over.
#[derive(Default)]
pub struct Metrics {
    pub signatures: Family<ResultLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    /// Sessions open for signing, and of those, signing now.
    pub sessions_open: Gauge,
    pub sessions_busy: Gauge,
    pub recoveries: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        for &result in SignResult::ALL {
            let _ = m.signatures.get_or_create(&ResultLabel { result });
        }
        for &kind in ErrorKind::ALL {
            let _ = m.errors.get_or_create(&KindLabel { kind });
        }
        r.register(
            "hsm_signatures",
            "Signatures asked of the HSM, by result",
            m.signatures.clone(),
        );
        r.register(
            "hsm_errors",
            "HSM faults by kind (each also answers UNAVAILABLE while recovery runs)",
            m.errors.clone(),
        );
        r.register(
            "hsm_sessions_open",
            "PKCS#11 sessions open for signing",
            m.sessions_open.clone(),
        );
        r.register(
            "hsm_sessions_busy",
            "PKCS#11 sessions signing now",
            m.sessions_busy.clone(),
        );
        r.register(
            "hsm_recoveries",
            "Times the token was reopened after a fault",
            m.recoveries.clone(),
        );
        m
    }
}
