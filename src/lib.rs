//! The `certmint` binary's library: the CLI, configuration (the sections of every crate
//! assembled and checked once), the wiring of `serve`, admin HTTP, telemetry and the
//! metrics registry. Business rules live in the crates below it (see docs/architecture.md).

// A panic on a request path takes the CA down (STYLE.md); tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod readiness;
pub mod runtime;
pub mod telemetry;
