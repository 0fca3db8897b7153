//! The gRPC layer: proto ⇄ domain, and the one place errors become `Status`.

pub mod deadline;
mod identity;
mod status;
pub mod status_fix;

pub use identity::IdentityService;
