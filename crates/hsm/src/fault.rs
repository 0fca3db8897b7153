//! What went wrong with the token, classified for metrics and recovery. The message never
//! holds the PIN.

use cryptoki::error::{Error as CkError, RvError};

use crate::metrics::ErrorKind;

/// What went wrong, with the kind for metrics. The message never holds the PIN.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    pub kind: ErrorKind,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Classifies a module error (`what` = the operation).
    pub(crate) fn from_ck(what: &str, e: CkError) -> Self {
        let kind = match &e {
            CkError::Pkcs11(rv, _) => match rv {
                RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked => ErrorKind::PinIncorrect,
                RvError::UserNotLoggedIn => ErrorKind::LoggedOut,
                RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::SlotIdInvalid
                | RvError::CryptokiNotInitialized => ErrorKind::TokenGone,
                _ => ErrorKind::Module,
            },
            _ => ErrorKind::Module,
        };
        Self::new(kind, format!("{what}: {e}"))
    }
}
