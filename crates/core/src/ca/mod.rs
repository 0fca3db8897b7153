//! The certificate authority core: issuers, anchors, the leaf profile and the store.
//! Knows nothing of gRPC or Kubernetes.

mod anchors;
pub mod cert;
pub mod create;
mod issuer;
pub mod keys;
mod leaf;
mod signer;
pub mod signing_key;
mod store;
pub mod verify;

pub use anchors::{AnchorError, TrustAnchors};
pub use issuer::{Issuer, IssuerError, IssuerMaterial};
pub use leaf::{LeafNames, LeafPolicy, SignError, SignedLeaf};
pub use signer::ca_signer;
pub use signing_key::{CaKey, ExternalKey, KeyResolver, NoExternalKeys};
pub use store::{CaState, CaStore};

use std::time::SystemTime;

/// RFC 3339 UTC rendering for messages and logs.
pub fn fmt_time(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// The throwaway identity used to prove a new issuer can sign verifiable leaves.
pub fn probe_names(naming: &crate::identity::Naming) -> LeafNames {
    let sa = crate::identity::ServiceAccount::new("certmint-probe", "certmint-probe")
        .expect("valid static labels");
    LeafNames {
        dns: vec![naming.linkerd_name(&sa)],
        uri: Some(naming.spiffe_id(&sa)),
    }
}
