//! The gRPC layer: proto ⇄ domain, and the one place errors become `Status`.

pub mod call;
pub mod deadline;
mod identity;
mod istio;
mod status;
pub mod status_fix;

pub use call::CallHandler;
pub use identity::IdentityService;
pub use istio::IstioService;
