//! Authenticating workload tokens: the trait the Certify pipeline uses and what it proves.
//! The backends (TokenReview, local JWT) live in the Kubernetes crate.

pub mod caller;

use std::fmt;

use futures::future::BoxFuture;

pub use caller::{Authenticated, Method, PodRef};

/// Why a token did not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The token is not valid (UNAUTHENTICATED). The reason is safe to log, never the token.
    #[error("token rejected: {0}")]
    Unauthenticated(String),
    /// The authenticator could not decide now (UNAVAILABLE, retryable).
    #[error("token review unavailable: {0}")]
    Unavailable(String),
}

/// Proves the service account behind a token, and says how.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>>;
}

/// A bearer token, trimmed of the whitespace token files carry. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

/// Why request bytes are not a usable token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is empty")]
    Empty,
    #[error("token is not UTF-8")]
    NotUtf8,
}

impl Token {
    /// Accepts the exact bytes of a token file: trims surrounding ASCII whitespace
    /// (linkerd2-proxy sends the file verbatim, trailing newline included).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        let s = std::str::from_utf8(bytes.trim_ascii()).map_err(|_| TokenError::NotUtf8)?;
        if s.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_token_file_whitespace() {
        assert_eq!(
            Token::from_bytes(b"  abc.def\n").unwrap().as_str(),
            "abc.def"
        );
        assert_eq!(Token::from_bytes(b"\n \t"), Err(TokenError::Empty));
        assert_eq!(Token::from_bytes(b"\xff\xfe"), Err(TokenError::NotUtf8));
        assert_eq!(
            format!("{:?}", Token::from_bytes(b"secret").unwrap()),
            "Token(<redacted>)"
        );
    }
}
