//! The token authenticators behind core's [`Authenticator`] trait: TokenReview, local
//! verification of projected tokens against the API server's key set, the local-JWT
//! authenticator for clusters without Kubernetes, and the review cache.

pub mod cache;
pub mod jws;
pub mod jwt;
pub mod keyset;
pub mod kubernetes;
pub mod limit;
pub mod local;
pub mod projected;
pub mod settings;
pub mod tokenreview;

pub use certmint_core::authn::{
    Authenticated, Authenticator, AuthnError, Method, PodRef, Token, TokenError,
};
