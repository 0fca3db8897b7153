//! HTTP/2 stream abuse: a client that never reads, rapid reset, a body that never ends.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::common::wire::*;
use super::common::*;
use super::{CLOSE_LIMIT, Ctx, csr_with, request_bytes, web};

pub async fn cases(ctx: &Ctx<'_>) {
    let csr = csr_with(&CsrSpec::for_identity(&web()));
    // A client that never reads its responses: tiny flow-control window, many calls.
    let tcp = TcpStream::connect(ctx.addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let msg = frame(&request_bytes(ctx.files, &csr, &[]));
    let mut pending = Vec::new();
    for _ in 0..50 {
        let mut s = send.clone().ready().await.unwrap();
        let (resp, mut body) = s.send_request(certify_request(), false).unwrap();
        body.send_data(msg.clone(), true).unwrap();
        pending.push(resp);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pending);
    conn.abort();
    println!("case never-reading client: 50 calls outstanding, dropped");

    // Rapid reset: streams opened and cancelled at once.
    let tcp = TcpStream::connect(ctx.addr).await.unwrap();
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
    let tcp = TcpStream::connect(ctx.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut s = send.ready().await.unwrap();
    let (resp, mut body) = s.send_request(certify_request(), false).unwrap();
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
    // The server-wide timeout ends the call: UNAVAILABLE (retry), as the handler's own
    // deadline answers, never tonic's CANCELLED.
    let status = resp
        .as_ref()
        .ok()
        .and_then(|r| r.headers().get("grpc-status").cloned());
    assert_eq!(
        status.as_ref().map(|v| v.as_bytes()),
        Some(&b"14"[..]),
        "{resp:?}"
    );

    drop(body);
}

/// The headers of a Certify call, as a gRPC client sends them.
fn certify_request() -> http::Request<()> {
    http::Request::post(format!("http://certmint{CERTIFY_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}
