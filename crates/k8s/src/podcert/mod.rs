//! Kubernetes pod certificates (issue 23): certmint as the signer of
//! `certificates.k8s.io/v1` (or 1.36's `v1beta1`) PodCertificateRequests for its signer
//! name. The kubelet makes the key and the request; certmint checks it against its pod
//! watch, signs a SPIFFE leaf with the same issuer, leaf profile and audit trail as its gRPC
//! APIs, writes the decision once, and publishes the anchors as a ClusterTrustBundle.

pub mod audit;
pub mod bundle;
pub mod decide;
mod issue;
pub mod lifetime;
pub mod metrics;
pub mod owners;
mod parts;
mod reads;
pub mod request;
mod seen;
pub mod settings;
pub mod signer;
pub mod status;
pub mod version;
pub mod versioned;

pub use audit::{DecisionAudit, DecisionRecord};
pub use bundle::BundlePublisher;
pub use metrics::Metrics;
pub use settings::{ApiVersion, PodCertConfig};
pub use signer::{Signer, SignerParts};
