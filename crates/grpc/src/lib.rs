//! The gRPC layer: the protos, one adapter per wire API (Linkerd's Identity, Istio's CA
//! service), the transport-neutral call handler, the one error → `Status` mapping, the
//! listeners and serving TLS. It holds no key material and knows nothing of Kubernetes.

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod call;
pub mod deadline;
mod identity;
mod istio;
pub mod istio_config;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod proto;
pub mod serve;
mod status;
pub mod status_fix;
pub mod tls;

pub use call::CallHandler;
pub use identity::IdentityService;
pub use istio::IstioService;
pub use limits::Limits;
pub use serve::Health;
