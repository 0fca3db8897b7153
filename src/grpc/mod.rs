//! The gRPC layer: proto ⇄ domain, and the one place errors become `Status`.

mod identity;
mod status;
pub mod status_fix;

pub use identity::IdentityService;
