//! CSRs built to cost: thousands of SANs, huge extensions, very large RSA keys.

use tonic::Code;

use super::common::wire::*;
use super::common::*;
use super::{Ctx, big_extension, call_bytes, csr_with, expect, request_bytes, web};

pub async fn cases(ctx: &Ctx<'_>) {
    let mut many_sans = CsrSpec::for_identity(&web());
    many_sans.dns = (0..3000).map(|i| format!("n{i}.{}", web())).collect();
    let a = call_bytes(
        ctx.addr,
        &request_bytes(ctx.files, &csr_with(&many_sans), &[]),
    )
    .await;
    expect(
        "CSR with 3000 DNS SANs (over the message limit)",
        &a,
        Code::ResourceExhausted,
    );
    many_sans.dns.truncate(800);
    let a = call_bytes(
        ctx.addr,
        &request_bytes(ctx.files, &csr_with(&many_sans), &[]),
    )
    .await;
    expect(
        "CSR with 800 DNS SANs (over the 16 KiB CSR cap)",
        &a,
        Code::InvalidArgument,
    );
    many_sans.dns.truncate(250);
    let a = call_bytes(
        ctx.addr,
        &request_bytes(ctx.files, &csr_with(&many_sans), &[]),
    )
    .await;
    expect("CSR with 250 DNS SANs", &a, Code::PermissionDenied);
    for (kib, code) in [(40, Code::InvalidArgument), (12, Code::Ok)] {
        let a = call_bytes(
            ctx.addr,
            &request_bytes(ctx.files, &big_extension(kib), &[]),
        )
        .await;
        expect(&format!("CSR with a {kib} KiB unknown extension"), &a, code);
    }
    for bits in [8192, 16384] {
        let csr = CsrSpec::for_identity(&web()).build_with(&HugeRsa::new(bits));
        let a = call_bytes(ctx.addr, &request_bytes(ctx.files, &csr, &[])).await;
        expect(
            &format!("RSA-{bits} CSR, bogus signature"),
            &a,
            Code::InvalidArgument,
        );
        assert!(
            a.message.contains(&format!("RSA-{bits}")),
            "size refused first: {a:?}"
        );
    }
}
