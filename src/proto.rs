//! Code generated from `proto/identity.proto` at build time.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("io.linkerd.proxy.identity");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("identity_descriptor");
