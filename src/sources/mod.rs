//! Where issuers and trust anchors come from, and the one mechanism that validates and
//! applies them (the [`Reloader`]), whatever the source.

pub mod files;
mod reloader;
pub mod watch;

pub use reloader::{NoReport, ReloadReporter, Reloader};
