//! certmint: a certificate authority for Kubernetes workloads that speaks Linkerd's
//! identity API. See DESIGN.md for the specification.

pub mod admin;
pub mod app;
pub mod audit;
pub mod authn;
pub mod ca;
pub mod certify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod csr;
pub mod fsutil;
pub mod grpc;
pub mod identity;
pub mod impersonation;
pub mod kubeclient;
pub mod listen;
pub mod logsum;
pub mod metrics;
pub mod proto;
pub mod readiness;
pub mod runtime;
pub mod serve;
pub mod sources;
pub mod telemetry;
pub mod tls;
