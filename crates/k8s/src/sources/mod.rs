//! Where issuers and trust anchors come from (the API server's Secret and ConfigMap, or
//! mounted files), and the one mechanism that validates and applies them (the
//! [`Reloader`]), whatever the source.

pub mod events;
pub mod files;
pub mod kube;
mod reloader;
mod remind;
pub mod settings;
pub mod watch;

pub use reloader::{
    NoReport, OVERRIDE_ANNOTATION, OverrideHook, ReloadReporter, Reloader, Reminders,
};
