//! Tools for hostile-client tests: a well-behaved client that keeps certifying and records
//! its latency, raw HTTP/2 gRPC calls with arbitrary bytes, closed-connection checks, RSS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use rcgen::KeyPair;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::{CaFiles, CsrSpec, certify, client, linkerd_name};

pub const CERTIFY_PATH: &str = "/io.linkerd.proxy.identity.Identity/Certify";

/// Certifies `shop/web` in a loop on its own connection until stopped.
pub struct GoodClient {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

/// What a good client saw: every call's latency; failures are panics in the task.
pub struct GoodReport {
    pub calls: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl GoodClient {
    /// Every call must succeed within `deadline`; one call every `every`.
    pub async fn start(files: &CaFiles, addr: SocketAddr, every: Duration) -> Self {
        let token = files.token_key.token("shop", "web");
        Self::start_with(client(addr).await, token, every)
    }

    /// The same over a given client (e.g. TLS) with a given token for `shop/web`.
    pub fn start_with(mut c: IdentityClient<Channel>, token: String, every: Duration) -> Self {
        let id = linkerd_name("shop", "web");
        let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let seen = latencies.clone();
        let task = tokio::spawn(async move {
            while !*stopped.borrow() {
                let t = Instant::now();
                let call = certify(&mut c, &id, token.clone(), csr.clone());
                let r = tokio::time::timeout(Duration::from_secs(5), call).await;
                let took = t.elapsed();
                match r {
                    Ok(Ok(_)) => seen.lock().unwrap().push(took),
                    Ok(Err(s)) => panic!("good client refused: {s:?}"),
                    Err(_) => panic!("good client: no answer within 5 s"),
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
        Self {
            stop,
            task,
            latencies,
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.latencies.lock().unwrap().len()
    }

    pub async fn finish(self) -> GoodReport {
        let _ = self.stop.send(true);
        self.task.await.expect("good client failed");
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort();
        assert!(!l.is_empty(), "good client made no call");
        let at = |q: f64| l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1];
        GoodReport {
            calls: l.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: *l.last().unwrap(),
        }
    }
}

/// The answer to a raw gRPC call: HTTP status, grpc-status and grpc-message if any.
#[derive(Debug)]
pub struct RawAnswer {
    pub http: u16,
    pub grpc_status: Option<i32>,
    pub message: String,
}

/// A gRPC message frame: flag, length, bytes.
pub fn frame(msg: &[u8]) -> Bytes {
    let mut b = vec![0u8];
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(msg);
    b.into()
}

/// One call over a fresh HTTP/2 connection with `extra` headers and `body` as sent.
pub async fn raw_call(
    addr: SocketAddr,
    path: &str,
    extra: &[(String, String)],
    body: Bytes,
) -> Result<RawAnswer, h2::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await?;
    let mut req = http::Request::post(format!("http://certmint{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        req = req.header(k.as_str(), v.as_str());
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false)?;
    stream.send_data(body, true)?;
    let resp = resp.await?;
    let http = resp.status().as_u16();
    let status_of = |h: &http::HeaderMap| {
        let code = h
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let msg = h
            .get("grpc-message")
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .unwrap_or_default();
        (code, msg)
    };
    let (mut grpc_status, mut message) = status_of(resp.headers());
    if grpc_status.is_none() {
        let mut body = resp.into_body();
        while let Some(d) = body.data().await {
            let d = d?;
            let _ = body.flow_control().release_capacity(d.len());
        }
        if let Some(t) = body.trailers().await? {
            (grpc_status, message) = status_of(&t);
        }
    }
    Ok(RawAnswer {
        http,
        grpc_status,
        message,
    })
}

/// Waits until the server closes `s` (EOF or reset), failing after `limit`; returns
/// how long it took. Anything the server writes first is read and dropped.
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

/// Resident memory of this process (server and attackers), bytes.
pub fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// An RSA "key" of any size whose signatures are garbage: a CSR made with it can only be
/// refused for its size if the size is checked before the signature.
pub struct HugeRsa(Vec<u8>);

impl HugeRsa {
    pub fn new(bits: usize) -> Self {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xF1;
        let n = rsa::BigUint::from_bytes_be(&n);
        let e = rsa::BigUint::from(65537u32);
        let public = rsa::RsaPublicKey::new_with_max_size(n, e, bits).unwrap();
        Self(public.to_pkcs1_der().unwrap().as_bytes().to_vec())
    }
}

impl rcgen::PublicKeyData for HugeRsa {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for HugeRsa {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(vec![0x5a; self.0.len()])
    }
}
