//! The gRPC layer: proto ⇄ domain, and the one place errors become `Status`.

mod identity;
pub mod oversize;
mod status;

pub use identity::IdentityService;
