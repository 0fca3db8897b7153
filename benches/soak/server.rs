//! `certmint serve` (the release binary) as a child process, reading its issuer Secret and
//! anchors ConfigMap from the fake API server and authenticating with TokenReview, so that
//! the RSS and descriptors measured are the server's alone. Everything is on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::AUDIENCE;
use crate::common::pki::Ca;
use crate::fake_kube::FakeKube;

pub const NS: &str = "linkerd";
pub const SECRET: &str = "linkerd-identity-issuer";
pub const CONFIGMAP: &str = "linkerd-identity-trust-roots";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `issuer` to the issuer Secret (a new resourceVersion; watchers notified).
pub fn put_issuer(kube: &FakeKube, issuer: &Ca) {
    let data = BTreeMap::from([
        ("tls.crt".to_owned(), issuer.cert_pem.clone().into_bytes()),
        ("tls.key".to_owned(), issuer.key_pem.clone().into_bytes()),
    ]);
    kube.put_secret(NS, SECRET, "kubernetes.io/tls", data);
}

pub fn put_anchors(kube: &FakeKube, root: &Ca) {
    let data = BTreeMap::from([("ca-bundle.crt".to_owned(), root.cert_pem.clone())]);
    kube.put_configmap(NS, CONFIGMAP, data);
}

pub struct Process {
    child: Child,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Process {
    /// Spawns `certmint serve` against `kube` and waits until `/ready` answers 200.
    pub fn spawn(dir: &Path, kube: &FakeKube) -> Result<Self, String> {
        let (grpc, admin) = (free_port(), free_port());
        let kubeconfig = dir.join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig);
        let config = dir.join("certmint.yaml");
        let yaml = config_yaml(grpc, admin, &kubeconfig);
        std::fs::write(&config, yaml).map_err(|e| format!("write {}: {e}", config.display()))?;
        let log = dir.join("certmint.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("create log: {e}"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawn certmint: {e}"))?;
        let mut p = Process {
            child,
            grpc,
            admin,
            log,
        };
        let start = Instant::now();
        while http_get(admin, "/ready").map(|(code, _)| code) != Some(200) {
            if start.elapsed() > READY_TIMEOUT || p.child.try_wait().ok().flatten().is_some() {
                p.stop();
                return Err(format!("certmint serve not ready; see {}", p.log.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The `/metrics` text, or `None` if the admin port did not answer.
    pub fn metrics(&self) -> Option<String> {
        match http_get(self.admin, "/metrics") {
            Some((200, body)) => Some(body),
            _ => None,
        }
    }

    /// SIGTERM, then SIGKILL after 30 s (the default shutdown grace is 25 s).
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.alive() {
            self.stop();
        }
    }
}

fn config_yaml(grpc: SocketAddr, admin: SocketAddr, kubeconfig: &Path) -> String {
    format!(
        "listen: \"{grpc}\"\nadmin_listen: \"{admin}\"\nkubeconfig: {kc}\n\
         issuer:\n  source: kubernetes\n  namespace: {NS}\n  secret: {SECRET}\n\
         trust_anchors:\n  source: kubernetes\n  namespace: {NS}\n  configmap: {CONFIGMAP}\n  key: ca-bundle.crt\n\
         authn:\n  mode: kubernetes\n  audiences: [{AUDIENCE}]\n\
         tls:\n  enabled: true\n",
        kc = kubeconfig.display(),
    )
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port on 127.0.0.1")
}

/// `GET path` over HTTP/1.1 with `Connection: close`: (status, body), at most 4 MiB read.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.take(4 << 20).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}
