//! Hostile clients on the TLS listener (issue 10 §5): garbage records, handshakes that
//! never finish, silence before and after the handshake. A well-behaved TLS client
//! certifies throughout; connections must be closed at the configured deadlines.

use certmint_testsupport as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certmint::app::Server;
use common::wire::*;
use common::*;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const SERVER_NAME: &str = "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local";
const DEADLINE: Duration = Duration::from_millis(800);
const CLOSE_LIMIT: Duration = Duration::from_secs(8);

/// The first flight of a real TLS client (its ClientHello), to be sent and then abandoned.
fn client_hello(root: &pki::Ca) -> Vec<u8> {
    let mut conn = rustls::ClientConnection::new(tls_config(root), server_name()).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    assert_eq!(out[0], 0x16, "a handshake record");
    out
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).unwrap()
}

fn tls_config(root: &pki::Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.der.clone())).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

async fn closes(server: &Server, case: &str, bytes: &[u8]) -> Duration {
    let mut s = TcpStream::connect(server.grpc_addr).await.unwrap();
    if !bytes.is_empty() {
        s.write_all(bytes).await.unwrap();
    }
    let took = closed_within(&mut s, CLOSE_LIMIT).await;
    println!("case TLS {case}: closed after {took:?}");
    took
}

fn dropped(server: &Server, reason: &str) -> f64 {
    let name = format!("certmint_grpc_connections_dropped_total{{reason=\"{reason}\"}}");
    let text = server.metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
        .unwrap()
}

/// Waits until `dropped(reason)` reaches `at_least`.
async fn counted(server: &Server, reason: &str, at_least: f64) {
    eventually(Duration::from_secs(10), reason, async || {
        dropped(server, reason) >= at_least
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_attacks_leave_the_good_client_served() {
    install_crypto();
    let files = CaFiles::new();
    let root = pki::Ca::root("root");
    let issuer = root.issuer("issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let mut c = files.config();
    c.tls.enabled = true;
    c.limits.handshake_timeout = DEADLINE;
    c.limits.preface_timeout = DEADLINE;
    let server = start_ready(c).await;
    let addr = server.grpc_addr;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&root.cert_pem))
        .domain_name(SERVER_NAME);
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = files.token_key.token("shop", "web");
    let good = GoodClient::start_with(IdentityClient::new(ch), token, Duration::from_millis(20));
    let rss0 = rss();

    let failed = dropped(&server, "handshake_failed");
    closes(&server, "garbage records", &[0x17; 300]).await;
    closes(
        &server,
        "random bytes",
        b"\x00\xffhello, not TLS at all\r\n\r\n",
    )
    .await;
    closes(
        &server,
        "plaintext HTTP/2 preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .await;
    let mut bogus_hello = client_hello(&root);
    for b in bogus_hello.iter_mut().skip(11).take(40) {
        *b ^= 0x55;
    }
    closes(&server, "corrupted ClientHello", &bogus_hello).await;
    // The metric is counted just after the socket is dropped: wait for it.
    counted(&server, "handshake_failed", failed + 4.0).await;

    let timed_out = dropped(&server, "handshake_timeout");
    let took = closes(&server, "silent connection", b"").await;
    assert!(took >= DEADLINE / 2, "closed too early: {took:?}");
    let took = closes(
        &server,
        "record header promising 16 KiB, then nothing",
        &[0x16, 3, 1, 0x40, 0],
    )
    .await;
    assert!(took >= DEADLINE / 2, "closed too early: {took:?}");
    let took = closes(
        &server,
        "ClientHello, then the handshake abandoned",
        &client_hello(&root),
    )
    .await;
    assert!(took >= DEADLINE / 2, "closed too early: {took:?}");

    // 200 abandoned handshakes at once.
    let hello = client_hello(&root);
    let mut conns = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        conns.push(s);
    }
    let t = Instant::now();
    for s in &mut conns {
        closed_within(s, CLOSE_LIMIT).await;
    }
    println!(
        "case TLS 200 abandoned handshakes: all closed after {:?}",
        t.elapsed()
    );
    counted(&server, "handshake_timeout", timed_out + 203.0).await;

    // A finished handshake, then silence or junk instead of the HTTP/2 preface.
    let prefaces = dropped(&server, "preface_timeout");
    for (case, bytes) in [
        ("handshake done, then silence", &b""[..]),
        (
            "handshake done, then HTTP/1.1",
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        ),
        (
            "handshake done, then 10 bytes of the preface",
            &b"PRI * HTTP"[..],
        ),
    ] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(tls_config(&root));
        let mut s = connector.connect(server_name(), tcp).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s.flush().await.unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            use tokio::io::AsyncReadExt;
            match tokio::time::timeout(CLOSE_LIMIT, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("{case}: still open"),
            }
        }
        println!("case TLS {case}: closed after {:?}", t.elapsed());
    }
    counted(&server, "preface_timeout", prefaces + 2.0).await;

    let m = server.metrics.clone();
    eventually(
        Duration::from_secs(10),
        "open connections back to 1",
        async || m.grpc.grpc_connections_open.get() <= 1,
    )
    .await;
    let report = good.finish().await;
    let grown = rss().saturating_sub(rss0);
    println!(
        "good TLS client: {} calls, p50 {:?}, p99 {:?}, max {:?}; RSS grew {} KiB",
        report.calls,
        report.p50,
        report.p99,
        report.max,
        grown / 1024
    );
    assert!(grown < 256 * 1024 * 1024, "RSS grew {grown} bytes");
    server.shutdown().await.unwrap();
}
