//! Hostile clients over the wire (issue 10 §5). One plaintext and one TLS server, each
//! with short configured timeouts and a low connection cap; a well-behaved client certifies
//! throughout every case and its latency is printed. Each case asserts the gRPC code or
//! that the connection is closed; memory and the open-connection gauge must come back.

use certmint_testsupport as common;

mod connection;
mod csrs;
mod headers;
mod protobuf;
mod streams;

use std::net::SocketAddr;
use std::time::Duration;

use certmint::app::Server;
use common::wire::*;
use common::*;
use rcgen::{CustomExtension, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::Code;

/// Short limits so time-outs are seen in about a second.
const PREFACE: Duration = Duration::from_millis(800);
const HANDSHAKE: Duration = Duration::from_millis(800);
const CAP: usize = 300;
/// Generous bound for "closed by the server" (timeouts above plus a busy machine).
const CLOSE_LIMIT: Duration = Duration::from_secs(8);

async fn start(files: &CaFiles, tls: bool) -> Server {
    install_crypto();
    let mut c = files.config();
    c.tls.enabled = tls;
    c.limits.preface_timeout = PREFACE;
    c.limits.handshake_timeout = HANDSHAKE;
    c.limits.max_connections = CAP;
    c.limits.request_timeout = Duration::from_secs(2);
    start_ready(c).await
}

fn web() -> String {
    linkerd_name("shop", "web")
}

/// A serialized CertifyRequest for `web` with `csr`, a valid token, and `tail` appended
/// (e.g. unknown fields).
fn request_bytes(files: &CaFiles, csr: &[u8], tail: &[u8]) -> Vec<u8> {
    use prost::Message;
    let req = linkerd2_proxy_api::identity::CertifyRequest {
        identity: web(),
        token: files.token_key.token("shop", "web").into_bytes(),
        certificate_signing_request: csr.to_vec(),
    };
    let mut b = req.encode_to_vec();
    b.extend_from_slice(tail);
    b
}

async fn call_bytes(addr: SocketAddr, msg: &[u8]) -> RawAnswer {
    raw_call(addr, CERTIFY_PATH, &[], frame(msg)).await.unwrap()
}

/// Asserts a raw answer's gRPC code.
#[track_caller]
fn expect(case: &str, a: &RawAnswer, code: Code) {
    assert_eq!(a.grpc_status, Some(code as i32), "{case}: {a:?}");
    println!("case {case}: {code:?} ({})", a.message);
}

/// Sends `bytes` on a fresh connection and asserts the server closes it.
async fn closes_after(addr: SocketAddr, case: &str, bytes: &[u8]) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if !bytes.is_empty() {
        s.write_all(bytes).await.unwrap();
    }
    let took = closed_within(&mut s, CLOSE_LIMIT).await;
    println!("case {case}: closed after {took:?}");
    took
}

fn csr_with(spec: &CsrSpec) -> Vec<u8> {
    spec.build(&KeyPair::generate().unwrap())
}

async fn gauge_back_to(server: &Server, n: i64) {
    let m = server.metrics.clone();
    eventually(
        Duration::from_secs(10),
        "open connections back",
        async || m.grpc.grpc_connections_open.get() <= n,
    )
    .await;
}

/// What every group of cases needs.
pub struct Ctx<'a> {
    pub files: &'a CaFiles,
    pub server: &'a Server,
    pub addr: SocketAddr,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_attacks_leave_the_good_client_served() {
    let files = CaFiles::new();
    let root = pki::Ca::root("root");
    let issuer = root.issuer("issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let server = start(&files, false).await;
    let addr = server.grpc_addr;
    let rss0 = rss();
    let good = GoodClient::start(&files, addr, Duration::from_millis(20)).await;
    let baseline = 1;

    let ctx = Ctx {
        files: &files,
        server: &server,
        addr,
    };

    connection::cases(&ctx).await;
    gauge_back_to(&server, baseline).await;
    assert!(good.calls() > 0);
    headers::cases(&ctx).await;
    protobuf::cases(&ctx).await;
    csrs::cases(&ctx).await;
    streams::cases(&ctx).await;

    gauge_back_to(&server, baseline + 2).await;
    let report = good.finish().await;
    let grown = rss().saturating_sub(rss0);
    println!(
        "good client: {} calls, p50 {:?}, p99 {:?}, max {:?}; RSS grew {} KiB",
        report.calls,
        report.p50,
        report.p99,
        report.max,
        grown / 1024
    );
    assert!(grown < 256 * 1024 * 1024, "RSS grew {grown} bytes");
    server.shutdown().await.unwrap();
}

/// A CSR for `web` carrying an unknown extension of `kib` KiB (never copied to a leaf).
fn big_extension(kib: usize) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![web()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 99999, 1],
        vec![0x04; kib * 1024],
    )];
    p.serialize_request(&key).unwrap().der().to_vec()
}

fn compressed_body() -> bytes::Bytes {
    let mut b = vec![1u8];
    b.extend_from_slice(&4u32.to_be_bytes());
    b.extend_from_slice(&[0x1f, 0x8b, 0, 0]);
    b.into()
}

/// The value of one metric line from the admin endpoint.
fn metric(server: &Server, line_prefix: &str) -> f64 {
    let text = server.metrics.encode();
    let name = format!("certmint_{line_prefix}");
    text.lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not found"))
}
