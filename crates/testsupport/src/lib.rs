//! certmint's test support, shared by the integration tests, the benchmarks and the fuzz
//! targets: PKI made on the fly, tokens, CSRs, a Linkerd-API client and an Istio one,
//! in-process servers, the fake Kubernetes API server, and the benchmark's load parts.
//! Nothing here is committed key material; everything is generated.

// Fixtures are made explicitly (each `new` generates keys or starts something).
#![allow(clippy::new_without_default)]

pub mod audit;
pub mod bench;
pub mod fake_kube;
pub mod istio_client;
pub mod lifecycle;
pub mod local_env;
pub mod pki;
pub mod softhsm;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use certmint::app::Server;
use certmint::config::{AuthnMode, Config, SourceKind};
use certmint_core::clock::Clock;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use serde_json::json;
use tonic::transport::Channel;

pub const AUDIENCE: &str = "identity.l5d.io";
pub const TOKEN_ISSUER: &str = "test-issuer";

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// `SA.NS.serviceaccount.identity.linkerd.cluster.local`
pub fn linkerd_name(ns: &str, sa: &str) -> String {
    format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local")
}

pub fn spiffe_id(ns: &str, sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}

/// A controllable clock for the CA (tokens still use real time).
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(SystemTime::now())))
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// A token-signing key and the public key file the server trusts.
pub struct TokenKey {
    key: KeyPair,
    pub public_pem: PathBuf,
}

impl TokenKey {
    pub fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().unwrap();
        let public_pem = dir.join("token.pub");
        std::fs::write(&public_pem, key.public_key_pem()).unwrap();
        Self { key, public_pem }
    }

    /// A projected service-account token.
    pub fn token(&self, ns: &str, sa: &str) -> String {
        self.token_with(ns, sa, AUDIENCE, TOKEN_ISSUER, 3600)
    }

    pub fn token_with(&self, ns: &str, sa: &str, aud: &str, iss: &str, ttl_secs: i64) -> String {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({
            "iss": iss, "sub": format!("system:serviceaccount:{ns}:{sa}"), "aud": [aud],
            "iat": now - 10, "nbf": now - 10, "exp": now + ttl_secs,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "u-1"}}
        });
        self.sign(&claims)
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let enc =
            jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            claims,
            &enc,
        )
        .unwrap()
    }
}

/// Options for a CSR.
#[derive(Default)]
pub struct CsrSpec {
    pub cn: Option<String>,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub ips: Vec<std::net::IpAddr>,
    pub emails: Vec<String>,
    pub ask_ca: bool,
}

impl CsrSpec {
    /// What linkerd2-proxy sends: CN and one DNS SAN, both the identity.
    pub fn for_identity(id: &str) -> Self {
        Self {
            cn: Some(id.into()),
            dns: vec![id.into()],
            ..Self::default()
        }
    }

    pub fn build(&self, key: &KeyPair) -> Vec<u8> {
        self.build_with(key)
    }

    pub fn build_with(&self, key: &impl rcgen::SigningKey) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        if let Some(cn) = &self.cn {
            p.distinguished_name.push(DnType::CommonName, cn.as_str());
        }
        for d in &self.dns {
            p.subject_alt_names
                .push(SanType::DnsName(d.clone().try_into().unwrap()));
        }
        for u in &self.uris {
            p.subject_alt_names
                .push(SanType::URI(u.clone().try_into().unwrap()));
        }
        for ip in &self.ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for e in &self.emails {
            p.subject_alt_names
                .push(SanType::Rfc822Name(e.clone().try_into().unwrap()));
        }
        if self.ask_ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.serialize_request(key).unwrap().der().to_vec()
    }
}

pub async fn client(addr: SocketAddr) -> IdentityClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    IdentityClient::new(ch)
}

pub async fn certify(
    client: &mut IdentityClient<Channel>,
    identity: &str,
    token: impl Into<Vec<u8>>,
    csr: Vec<u8>,
) -> Result<CertifyResponse, tonic::Status> {
    let req = CertifyRequest {
        identity: identity.into(),
        token: token.into(),
        certificate_signing_request: csr,
    };
    client.certify(req).await.map(|r| r.into_inner())
}

/// A CA directory layout: anchors file and issuer dir.
pub struct CaFiles {
    pub dir: tempfile::TempDir,
    pub anchors: PathBuf,
    pub issuer_dir: PathBuf,
    pub token_key: TokenKey,
}

impl CaFiles {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let issuer_dir = dir.path().join("issuer");
        std::fs::create_dir_all(&issuer_dir).unwrap();
        let token_key = TokenKey::new(dir.path());
        Self {
            anchors: dir.path().join("anchors.pem"),
            issuer_dir,
            token_key,
            dir,
        }
    }

    /// A layout already holding a fresh root as the anchor and an issuer it signed.
    pub fn with_fresh_ca() -> Self {
        Self::with_ca("root", "issuer").0
    }

    /// As [`Self::with_fresh_ca`], with the root and issuer named and returned.
    pub fn with_ca(root_name: &str, issuer_name: &str) -> (Self, pki::Ca, pki::Ca) {
        let files = Self::new();
        let root = pki::Ca::root(root_name);
        let issuer = root.issuer(issuer_name);
        files.write_anchors(&root.cert_pem);
        files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
        (files, root, issuer)
    }

    pub fn write_anchors(&self, pem: &str) {
        write_atomic(&self.anchors, pem.as_bytes());
    }

    /// Writes tls.crt and tls.key (each file replaced atomically).
    pub fn write_issuer(&self, cert_pem: &str, key_pem: &str) {
        write_atomic(&self.issuer_dir.join("tls.key"), key_pem.as_bytes());
        write_atomic(&self.issuer_dir.join("tls.crt"), cert_pem.as_bytes());
    }

    /// A serve config for this layout: plaintext, JWT authn, fast re-reads.
    pub fn config(&self) -> Config {
        let mut c = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        c.issuer.source = SourceKind::Files;
        c.issuer.dir = self.issuer_dir.clone();
        c.issuer.reload_interval = Duration::from_millis(300);
        c.trust_anchors.source = SourceKind::Files;
        c.trust_anchors.file = self.anchors.clone();
        c.trust_anchors.reload_interval = Duration::from_millis(300);
        c.authn.mode = AuthnMode::Jwt;
        c.authn.jwt.keys = vec![self.token_key.public_pem.clone()];
        c.authn.jwt.issuers = vec![TOKEN_ISSUER.into()];
        c.tls.enabled = false;
        c
    }

    /// `kubeconfig` in this layout's directory, written by `write`; returns its path.
    pub fn kubeconfig(&self, write: impl FnOnce(&Path)) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        write(&path);
        path
    }

    /// A `certmint serve` config file for this layout (loopback ports, plaintext, issuer
    /// and anchors from these files, Kubernetes through `kubeconfig`) with `extra` YAML
    /// appended; returns its path.
    pub fn write_serve_yaml(&self, kubeconfig: &Path, extra: &str) -> PathBuf {
        let path = self.dir.path().join("certmint.yaml");
        let base = format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nkubeconfig: {}\ntls:\n  enabled: false\n\
             issuer:\n  source: files\n  dir: {}\ntrust_anchors:\n  source: files\n  file: {}\n",
            kubeconfig.display(),
            self.issuer_dir.display(),
            self.anchors.display(),
        );
        std::fs::write(&path, base + extra).unwrap();
        path
    }

    /// [`Self::config`] with TokenReview authentication against the API server whose
    /// kubeconfig `write_kubeconfig` writes (into this layout's directory).
    pub fn kubernetes_config(&self, write_kubeconfig: impl FnOnce(&Path)) -> Config {
        let mut c = self.config();
        c.kubeconfig = Some(self.kubeconfig(write_kubeconfig));
        c.authn.mode = AuthnMode::Kubernetes;
        c
    }

    /// Certifies `shop/web` as linkerd2-proxy would, against the server at `addr`.
    pub async fn certify_web(&self, addr: SocketAddr) -> Result<CertifyResponse, tonic::Status> {
        let key = KeyPair::generate().unwrap();
        let id = linkerd_name("shop", "web");
        let mut c = client(addr).await;
        let csr = CsrSpec::for_identity(&id).build(&key);
        certify(&mut c, &id, self.token_key.token("shop", "web"), csr).await
    }

    pub async fn start(&self) -> Server {
        install_crypto();
        Server::start(self.config()).await.unwrap()
    }
}

/// Starts a server with `config` and waits (up to 20 s) until it is ready.
pub async fn start_ready(config: Config) -> Server {
    install_crypto();
    let server = Server::start(config).await.unwrap();
    let s = &server;
    eventually(Duration::from_secs(20), "server ready", async || {
        s.readiness.check().is_ok()
    })
    .await;
    server
}

/// Starts a server with `config` on a runtime of its own that lives as long as the test
/// binary, so every test of a file can share it. Returns its gRPC and admin addresses
/// once it is ready.
pub fn background_server(config: Config) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let server = start_ready(config).await;
            tx.send((server.grpc_addr, server.admin_addr)).unwrap();
            let _keep = server;
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `f` every 50 ms until it returns true, failing after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET on the admin port; returns the status code and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Sends SIGTERM to a child process (graceful shutdown).
pub fn sigterm(child: &std::process::Child) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
}

/// The `certmint` binary cargo built beside the running test or benchmark
/// (`target/<profile>/certmint`, the test executable being in `target/<profile>/deps`).
pub fn certmint_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("certmint");
    assert!(
        bin.exists(),
        "{} is missing; run the tests with cargo test, which builds it",
        bin.display()
    );
    bin
}
