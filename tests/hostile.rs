//! Hostile clients over the wire (issue 10 §5). One plaintext and one TLS server, each
//! with short configured timeouts and a low connection cap; a well-behaved client certifies
//! throughout every case and its latency is printed. Each case asserts the gRPC code or
//! that the connection is closed; memory and the open-connection gauge must come back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    let server = Server::start(c).await.unwrap();
    let s = &server;
    eventually(Duration::from_secs(20), "ready", async || {
        s.readiness.check().is_ok()
    })
    .await;
    server
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
        async || m.grpc_connections_open.get() <= n,
    )
    .await;
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

    // Connection level.
    closes_after(addr, "garbage instead of the preface", &[0xAB; 64]).await;
    closes_after(
        addr,
        "HTTP/1.1 request",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut preface_then_junk = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface_then_junk.extend_from_slice(&[0xFF; 64]);
    closes_after(addr, "preface then junk frames", &preface_then_junk).await;
    let took = closes_after(addr, "silent connection (slowloris)", b"").await;
    assert!(took >= PREFACE / 2, "closed too early: {took:?}");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let trickle = async {
        for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
            s.write_all(&[*b]).await?;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_LIMIT, trickle).await;
    closed_within(&mut s, CLOSE_LIMIT).await;
    println!(
        "case preface one byte per 150 ms: closed after {:?}",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "trickle held {:?}",
        t.elapsed()
    );

    // Many idle connections: never more than the cap open; beyond it they are closed at
    // once ("limit"), the rest at the preface deadline. How many hit the cap depends on how
    // fast this machine opens them relative to the deadline, so the exact split is printed
    // and asserted only when the flood was opened well within the deadline.
    let limit = "grpc_connections_dropped_total{reason=\"limit\"}";
    let preface = "grpc_connections_dropped_total{reason=\"preface_timeout\"}";
    let closed_before = metric(&server, limit) + metric(&server, preface);
    let m = server.metrics.clone();
    let mut idle = Vec::new();
    let mut most_open = 0;
    let flood = Instant::now();
    for _ in 0..CAP + 100 {
        idle.push(TcpStream::connect(addr).await.unwrap());
        most_open = most_open.max(m.grpc_connections_open.get());
    }
    let flood_took = flood.elapsed();
    for s in &mut idle {
        closed_within(s, CLOSE_LIMIT).await;
    }
    let srv = &server;
    eventually(
        Duration::from_secs(10),
        "every idle connection counted closed",
        async || metric(srv, limit) + metric(srv, preface) - closed_before >= (CAP + 100) as f64,
    )
    .await;
    assert!(
        most_open as usize <= CAP + 2,
        "{most_open} open with a cap of {CAP}"
    );
    let over = metric(&server, limit);
    if flood_took < PREFACE / 4 {
        assert!(
            over >= 90.0,
            "{over} refused at the cap (flood took {flood_took:?})"
        );
    }
    println!(
        "case {} idle connections, cap {CAP}: opened in {flood_took:?}, at most {most_open} open, {over} refused at the cap, all closed",
        CAP + 100
    );
    drop(idle);
    gauge_back_to(&server, baseline).await;
    assert!(good.calls() > 0);

    // Headers.
    let big = vec![("x-big".to_owned(), "a".repeat(64 * 1024))];
    let r = raw_call(addr, CERTIFY_PATH, &big, frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 64 KiB metadata value: {r:?}");
    let many: Vec<_> = (0..2000)
        .map(|i| (format!("x-m{i}"), "v".repeat(20)))
        .collect();
    let r = raw_call(addr, CERTIFY_PATH, &many, frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 2000 metadata entries: {r:?}");
    let long_path = format!("/{}", "p".repeat(32 * 1024));
    let r = raw_call(addr, &long_path, &[], frame(b"")).await;
    assert!(
        r.as_ref().map_or(true, |a| a.grpc_status != Some(0)),
        "{r:?}"
    );
    println!("case 32 KiB :path: {r:?}");
    let a = raw_call(
        addr,
        "/io.linkerd.proxy.identity.Identity/Nope",
        &[],
        frame(b""),
    )
    .await
    .unwrap();
    expect("unknown method", &a, Code::Unimplemented);

    // Protobuf.
    let malformed = metric(&server, "grpc_malformed_requests_total");
    expect(
        "identity field as a varint (wrong wire type)",
        &call_bytes(addr, &[0x08, 0x01]).await,
        Code::InvalidArgument,
    );
    expect(
        "truncated length-delimited field",
        &call_bytes(addr, &[0x0a, 0x10, b'a']).await,
        Code::InvalidArgument,
    );
    expect(
        "identity not UTF-8",
        &call_bytes(addr, &[0x0a, 0x02, 0xff, 0xfe]).await,
        Code::InvalidArgument,
    );
    expect(
        "group wire type (deprecated, unmatched)",
        &call_bytes(addr, &[0x0b]).await,
        Code::InvalidArgument,
    );
    let after = metric(&server, "grpc_malformed_requests_total");
    assert_eq!(after - malformed, 4.0, "each malformed request counted");
    expect(
        "only unknown fields (empty request)",
        &call_bytes(addr, &[0xf8, 0x06, 0x01]).await,
        Code::InvalidArgument,
    );
    let csr = csr_with(&CsrSpec::for_identity(&web()));
    expect(
        "valid request plus unknown fields",
        &call_bytes(
            addr,
            &request_bytes(&files, &csr, &[0xf8, 0x06, 0x01, 0x9a, 0x07, 0x01, 0x00]),
        )
        .await,
        Code::Ok,
    );
    expect(
        "empty message",
        &call_bytes(addr, b"").await,
        Code::InvalidArgument,
    );

    // Framing.
    let mut lying = vec![0u8];
    lying.extend_from_slice(&(1u32 << 30).to_be_bytes());
    lying.extend_from_slice(&[0; 10]);
    let a = raw_call(addr, CERTIFY_PATH, &[], lying.into())
        .await
        .unwrap();
    expect("length prefix claims 1 GiB", &a, Code::ResourceExhausted);
    let a = raw_call(addr, CERTIFY_PATH, &[], frame(&vec![0x0a; 64 * 1024 + 1]))
        .await
        .unwrap();
    expect("message over max_message_size", &a, Code::ResourceExhausted);
    let mut short = vec![0u8];
    short.extend_from_slice(&100u32.to_be_bytes());
    short.extend_from_slice(&[0x0a; 10]);
    let a = raw_call(addr, CERTIFY_PATH, &[], short.into())
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
    let a = raw_call(addr, CERTIFY_PATH, &[], compressed.into())
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
    let a = raw_call(addr, CERTIFY_PATH, &[], flag7.into())
        .await
        .unwrap();
    expect("invalid compression flag 7", &a, Code::InvalidArgument);
    let gz = vec![("grpc-encoding".to_owned(), "gzip".to_owned())];
    let a = raw_call(addr, CERTIFY_PATH, &gz, compressed_body())
        .await
        .unwrap();
    assert_ne!(a.grpc_status, Some(0), "{a:?}");
    assert_ne!(a.grpc_status, Some(Code::Internal as i32), "{a:?}");
    println!(
        "case grpc-encoding gzip (not enabled): {:?} {}",
        a.grpc_status, a.message
    );

    // CSRs.
    let mut many_sans = CsrSpec::for_identity(&web());
    many_sans.dns = (0..3000).map(|i| format!("n{i}.{}", web())).collect();
    let a = call_bytes(addr, &request_bytes(&files, &csr_with(&many_sans), &[])).await;
    expect(
        "CSR with 3000 DNS SANs (over the message limit)",
        &a,
        Code::ResourceExhausted,
    );
    many_sans.dns.truncate(800);
    let a = call_bytes(addr, &request_bytes(&files, &csr_with(&many_sans), &[])).await;
    expect(
        "CSR with 800 DNS SANs (over the 16 KiB CSR cap)",
        &a,
        Code::InvalidArgument,
    );
    many_sans.dns.truncate(250);
    let a = call_bytes(addr, &request_bytes(&files, &csr_with(&many_sans), &[])).await;
    expect("CSR with 250 DNS SANs", &a, Code::PermissionDenied);
    for (kib, code) in [(40, Code::InvalidArgument), (12, Code::Ok)] {
        let a = call_bytes(addr, &request_bytes(&files, &big_extension(kib), &[])).await;
        expect(&format!("CSR with a {kib} KiB unknown extension"), &a, code);
    }
    for bits in [8192, 16384] {
        let csr = CsrSpec::for_identity(&web()).build_with(&HugeRsa::new(bits));
        let a = call_bytes(addr, &request_bytes(&files, &csr, &[])).await;
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

    // A client that never reads its responses: tiny flow-control window, many calls.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let msg = frame(&request_bytes(&files, &csr, &[]));
    let mut pending = Vec::new();
    for _ in 0..50 {
        let mut s = send.clone().ready().await.unwrap();
        let req = http::Request::post(format!("http://certmint{CERTIFY_PATH}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, mut body) = s.send_request(req, false).unwrap();
        body.send_data(msg.clone(), true).unwrap();
        pending.push(resp);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pending);
    conn.abort();
    println!("case never-reading client: 50 calls outstanding, dropped");

    // Rapid reset: streams opened and cancelled at once.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    for _ in 0..500 {
        let Ok(mut s) = send.clone().ready().await else {
            break;
        };
        let req = http::Request::post(format!("http://certmint{CERTIFY_PATH}"))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        match s.send_request(req, false) {
            Ok((_, mut body)) => body.send_reset(h2::Reason::CANCEL),
            Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(CLOSE_LIMIT, conn).await;
    println!("case 500 streams opened and reset (rapid reset)");

    // A request body that never ends: the request timeout answers.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut s = send.ready().await.unwrap();
    let req = http::Request::post(format!("http://certmint{CERTIFY_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (resp, mut body) = s.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 50, 0x0a]), false)
        .unwrap();
    let t = Instant::now();
    let resp = tokio::time::timeout(CLOSE_LIMIT, resp)
        .await
        .expect("no answer");
    println!(
        "case request body never finished: answered after {:?}: {resp:?}",
        t.elapsed()
    );
    let ok = resp
        .as_ref()
        .is_ok_and(|r| r.headers().get("grpc-status").is_some_and(|v| v != "0"));
    assert!(ok || resp.is_err(), "{resp:?}");
    drop(body);

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
