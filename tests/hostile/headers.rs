//! Oversized metadata, thousands of headers, a huge :path and an unknown method.

use tonic::Code;

use super::common::wire::*;
use super::{Ctx, expect};

pub async fn cases(ctx: &Ctx<'_>) {
    let big = vec![("x-big".to_owned(), "a".repeat(64 * 1024))];
    let r = raw_call(ctx.addr, CERTIFY_PATH, &big, frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 64 KiB metadata value: {r:?}");
    let many: Vec<_> = (0..2000)
        .map(|i| (format!("x-m{i}"), "v".repeat(20)))
        .collect();
    let r = raw_call(ctx.addr, CERTIFY_PATH, &many, frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 2000 metadata entries: {r:?}");
    let long_path = format!("/{}", "p".repeat(32 * 1024));
    let r = raw_call(ctx.addr, &long_path, &[], frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 32 KiB :path: {r:?}");
    let a = raw_call(
        ctx.addr,
        "/io.linkerd.proxy.identity.Identity/Nope",
        &[],
        frame(b""),
    )
    .await
    .unwrap();
    expect("unknown method", &a, Code::Unimplemented);
}
