//! certmint's core: identities, CSR policy, the CA (issuer, anchors, leaf profile), the
//! Certify pipeline, the authenticator trait, impersonation policy, the clock and digests.
//! It knows nothing of gRPC, Kubernetes, metrics exposition or sockets (DESIGN.md §12).

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod authn;
pub mod ca;
pub mod certify;
pub mod clock;
pub mod csr;
pub mod digest;
pub mod fsutil;
pub mod identity;
pub mod impersonation;
pub mod labels;
pub mod logsum;
pub mod settings;
pub mod trust;
