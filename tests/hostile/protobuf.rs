//! Malformed protobuf (wrong wire types, truncation, unknown fields) and gRPC framing
//! (lying length prefixes, compression flags).

use tonic::Code;

use super::common::wire::*;
use super::common::*;
use super::{Ctx, call_bytes, compressed_body, csr_with, expect, metric, request_bytes, web};

pub async fn cases(ctx: &Ctx<'_>) {
    let malformed = metric(ctx.server, "grpc_malformed_requests_total");
    expect(
        "identity field as a varint (wrong wire type)",
        &call_bytes(ctx.addr, &[0x08, 0x01]).await,
        Code::InvalidArgument,
    );
    expect(
        "truncated length-delimited field",
        &call_bytes(ctx.addr, &[0x0a, 0x10, b'a']).await,
        Code::InvalidArgument,
    );
    expect(
        "identity not UTF-8",
        &call_bytes(ctx.addr, &[0x0a, 0x02, 0xff, 0xfe]).await,
        Code::InvalidArgument,
    );
    expect(
        "group wire type (deprecated, unmatched)",
        &call_bytes(ctx.addr, &[0x0b]).await,
        Code::InvalidArgument,
    );
    let after = metric(ctx.server, "grpc_malformed_requests_total");
    assert_eq!(after - malformed, 4.0, "each malformed request counted");
    expect(
        "only unknown fields (empty request)",
        &call_bytes(ctx.addr, &[0xf8, 0x06, 0x01]).await,
        Code::InvalidArgument,
    );
    let csr = csr_with(&CsrSpec::for_identity(&web()));
    expect(
        "valid request plus unknown fields",
        &call_bytes(
            ctx.addr,
            &request_bytes(ctx.files, &csr, &[0xf8, 0x06, 0x01, 0x9a, 0x07, 0x01, 0x00]),
        )
        .await,
        Code::Ok,
    );
    expect(
        "empty message",
        &call_bytes(ctx.addr, b"").await,
        Code::InvalidArgument,
    );

    let mut lying = vec![0u8];
    lying.extend_from_slice(&(1u32 << 30).to_be_bytes());
    lying.extend_from_slice(&[0; 10]);
    let a = raw_call(ctx.addr, CERTIFY_PATH, &[], lying.into())
        .await
        .unwrap();
    expect("length prefix claims 1 GiB", &a, Code::ResourceExhausted);
    let a = raw_call(
        ctx.addr,
        CERTIFY_PATH,
        &[],
        frame(&vec![0x0a; 64 * 1024 + 1]),
    )
    .await
    .unwrap();
    expect("message over max_message_size", &a, Code::ResourceExhausted);
    let mut short = vec![0u8];
    short.extend_from_slice(&100u32.to_be_bytes());
    short.extend_from_slice(&[0x0a; 10]);
    let a = raw_call(ctx.addr, CERTIFY_PATH, &[], short.into())
        .await
        .unwrap();
    expect(
        "length prefix longer than the body",
        &a,
        Code::InvalidArgument,
    );
    let mut compressed = vec![1u8];
    compressed.extend_from_slice(&3u32.to_be_bytes());
    compressed.extend_from_slice(&[1, 2, 3]);
    let a = raw_call(ctx.addr, CERTIFY_PATH, &[], compressed.into())
        .await
        .unwrap();
    expect(
        "compressed flag without grpc-encoding",
        &a,
        Code::InvalidArgument,
    );
    let mut flag7 = vec![7u8];
    flag7.extend_from_slice(&1u32.to_be_bytes());
    flag7.push(0);
    let a = raw_call(ctx.addr, CERTIFY_PATH, &[], flag7.into())
        .await
        .unwrap();
    expect("invalid compression flag 7", &a, Code::InvalidArgument);
    let gz = vec![("grpc-encoding".to_owned(), "gzip".to_owned())];
    let a = raw_call(ctx.addr, CERTIFY_PATH, &gz, compressed_body())
        .await
        .unwrap();
    assert_ne!(a.grpc_status, Some(0), "{a:?}");
    assert_ne!(a.grpc_status, Some(Code::Internal as i32), "{a:?}");
    println!(
        "case grpc-encoding gzip (not enabled): {:?} {}",
        a.grpc_status, a.message
    );
}
