//! certmint's Kubernetes layer: token authentication (TokenReview, the service-account
//! key set and projected-token verification, the local-JWT authenticator, the review
//! cache and back-pressure), the issuer/anchor sources (API watches and mounted files),
//! the pod index behind impersonation, Events, and the client.

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod authn;
pub mod client;
pub mod metrics;
pub mod podcert;
pub mod pods;
pub mod sources;
pub mod trust;
