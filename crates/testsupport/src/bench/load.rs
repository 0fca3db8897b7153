//! The load generator: one OS thread, a current-thread tokio runtime, the published
//! `linkerd2-proxy-api` client (or, for Istio's API, the client generated from
//! `proto/istio_ca.proto`) over loopback HTTP/2 (h2c or TLS). CSRs are made before the
//! clock starts; each call carries the next one.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certmint_grpc::proto::istio::IstioCertificateRequest;
use certmint_grpc::proto::istio::istio_certificate_service_client::IstioCertificateServiceClient;
use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::machine::{Noise, process_cpu, thread_cpu};

/// How the client reaches the server.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some((anchor PEM, server name))` for TLS.
    pub tls: Option<(String, String)>,
}

/// One load run: `requests` calls (after `warmup`), `concurrency` at a time, spread over
/// `conns` HTTP/2 connections.
pub struct Spec<'a> {
    pub target: Target,
    pub identity: String,
    pub token: Vec<u8>,
    /// DER CSRs for Linkerd's Certify; PEM for Istio's CreateCertificate.
    pub csrs: &'a [Vec<u8>],
    /// Call Istio's CreateCertificate (token as a Bearer header) instead of Certify.
    pub istio: bool,
    /// Index of the first CSR to use (CSRs are taken in order, wrapping around the pool).
    pub first_csr: usize,
    pub requests: usize,
    pub warmup: usize,
    pub concurrency: usize,
    pub conns: usize,
    /// No new call starts after this long (the timed part ends early on a slow server).
    pub time_cap: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub wall: Duration,
    /// Per-call latency in µs, sorted.
    pub latencies: Vec<u32>,
    /// CPU used by the load-generator thread during the timed part.
    pub client_cpu: Duration,
    /// CPU used by the whole process (server runtime, fake API server, client).
    pub process_cpu: Duration,
    /// Cores used by other processes on the machine meanwhile (disturbance).
    pub other_cores: f64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }

    /// The `q`-quantile of latency in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile(&self.latencies, q) as f64 / 1000.0
    }
}

pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs `spec` on a fresh thread and waits for it.
pub fn run(spec: &Spec<'_>) -> Outcome {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            rt.block_on(drive(spec))
        })
        .join()
        .expect("load thread")
    })
}

async fn drive(spec: &Spec<'_>) -> Outcome {
    let mut clients = Vec::new();
    for _ in 0..spec.conns.max(1) {
        clients.push(connect(&spec.target).await);
    }
    let first = spec.first_csr;
    if spec.warmup > 0 {
        let cap = spec.time_cap.map(|c| Instant::now() + c / 4);
        calls(spec, &clients, first, spec.warmup, cap).await;
    }
    let (cpu0, proc0, t0) = (thread_cpu(), process_cpu(), Instant::now());
    let noise = Noise::start();
    let cap = spec.time_cap.map(|c| t0 + c);
    let mut out = calls(spec, &clients, first + spec.warmup, spec.requests, cap).await;
    out.wall = t0.elapsed();
    out.client_cpu = thread_cpu().saturating_sub(cpu0);
    out.process_cpu = process_cpu().saturating_sub(proc0);
    out.other_cores = noise.cores();
    out.latencies.sort_unstable();
    out
}

/// `count` calls using CSRs `from..from+count` (mod pool size), `concurrency` at a time,
/// none started after `cap`.
async fn calls(
    spec: &Spec<'_>,
    clients: &[Channel],
    from: usize,
    count: usize,
    cap: Option<Instant>,
) -> Outcome {
    let next = Cell::new(0usize);
    let out = RefCell::new(Outcome {
        latencies: Vec::with_capacity(count),
        ..Outcome::default()
    });
    let workers = (0..spec.concurrency.min(count).max(1)).map(|w| {
        let channel = clients[w % clients.len()].clone();
        let (next, out) = (&next, &out);
        async move {
            let mut client = Client::new(channel, spec);
            loop {
                let i = next.get();
                if i >= count || cap.is_some_and(|c| Instant::now() >= c) {
                    return;
                }
                next.set(i + 1);
                let csr = &spec.csrs[(from + i) % spec.csrs.len()];
                let t = Instant::now();
                let r = client.call(spec, csr).await;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                let mut o = out.borrow_mut();
                match r {
                    Ok(()) => {
                        o.ok += 1;
                        o.latencies.push(us);
                    }
                    Err(e) => record_error(&mut o, e),
                }
            }
        }
    });
    futures::future::join_all(workers).await;
    out.into_inner()
}

/// A client of the wire API the spec asks for.
enum Client {
    Linkerd(IdentityClient<Channel>),
    Istio(
        IstioCertificateServiceClient<Channel>,
        tonic::metadata::AsciiMetadataValue,
    ),
}

impl Client {
    fn new(channel: Channel, spec: &Spec<'_>) -> Self {
        if !spec.istio {
            return Client::Linkerd(IdentityClient::new(channel));
        }
        let token = String::from_utf8_lossy(&spec.token);
        let bearer = format!("Bearer {}", token.trim())
            .parse()
            .expect("token header");
        Client::Istio(IstioCertificateServiceClient::new(channel), bearer)
    }

    /// One call with `csr`; Err says why it did not issue.
    async fn call(&mut self, spec: &Spec<'_>, csr: &[u8]) -> Result<(), String> {
        let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
        match self {
            Client::Linkerd(c) => {
                let req = CertifyRequest {
                    identity: spec.identity.clone(),
                    token: spec.token.clone(),
                    certificate_signing_request: csr.to_vec(),
                };
                let resp = c.certify(req).await.map_err(status)?;
                match resp.get_ref().leaf_certificate.is_empty() {
                    true => Err("empty leaf".into()),
                    false => Ok(()),
                }
            }
            Client::Istio(c, bearer) => {
                let mut req = tonic::Request::new(IstioCertificateRequest {
                    csr: String::from_utf8(csr.to_vec()).expect("PEM is ASCII"),
                    validity_duration: 86_400,
                    metadata: None,
                });
                req.metadata_mut().insert("authorization", bearer.clone());
                let resp = c.create_certificate(req).await.map_err(status)?;
                match resp.get_ref().cert_chain.len() {
                    3 => Ok(()),
                    n => Err(format!("chain of {n} entries")),
                }
            }
        }
    }
}

fn record_error(o: &mut Outcome, e: String) {
    o.errors += 1;
    o.first_error.get_or_insert(e);
}

/// One HTTP/2 connection (a tonic `Channel` connects once and multiplexes calls).
pub async fn connect(target: &Target) -> Channel {
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{}", target.addr)).expect("endpoint");
    if let Some((anchors, name)) = &target.tls {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(anchors))
            .domain_name(name.clone());
        ep = ep.tls_config(tls).expect("client TLS config");
    }
    ep.connect().await.expect("connect to certmint")
}
