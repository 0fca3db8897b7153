//! Where issuers and trust anchors come from, and the one mechanism that validates and
//! applies them (the [`Reloader`]), whatever the source.

pub mod events;
pub mod files;
pub mod kube;
pub mod pods;
mod reloader;
mod remind;
pub mod watch;

pub use reloader::{NoReport, ReloadReporter, Reloader, Reminders};
