//! Code generated from `proto/` at build time.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("io.linkerd.proxy.identity");

/// Istio's CA API (`istio.v1.auth`).
pub mod istio {
    tonic::include_proto!("istio.v1.auth");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("identity_descriptor");
