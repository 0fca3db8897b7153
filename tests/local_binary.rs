//! `certmint serve` as a process with local verification (issue 11): it logs its mode,
//! keeps certifying while the fake API server refuses connections, and summarises the
//! local fallbacks in one log line per interval with a count, not one line per call.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use fake_kube::{FakeKube, Outage, TokenSpec};
use rcgen::KeyPair;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Starts the binary; every JSON log line goes to the returned channel.
fn spawn_serve(config: &std::path::Path) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok);
        for v in lines.filter_map(|l| serde_json::from_str::<Value>(&l).ok()) {
            let _ = tx.send(v);
        }
    });
    (child, rx)
}

/// Waits for the first log line whose message is `message`.
fn wait_line(rx: &mpsc::Receiver<Value>, message: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line {message:?} within {limit:?}"));
        if v["message"] == message {
            return v;
        }
    }
}

#[tokio::test]
async fn serve_binary_certifies_through_an_outage_and_summarises_fallbacks() {
    let kube = FakeKube::start().await;
    let files = CaFiles::with_fresh_ca();
    let kubeconfig = files.kubeconfig(|p| kube.write_kubeconfig(p));
    let config = files.write_serve_yaml(
        &kubeconfig,
        "authn:\n  kubernetes:\n    local_verification: fallback\n    timeout: 2s\n",
    );
    let (mut child, logs) = spawn_serve(&config);
    let mode = wait_line(&logs, "Kubernetes token authentication", WAIT);
    assert_eq!(mode["local_verification"], "fallback");
    let serving = wait_line(&logs, "certmint serving", WAIT);
    let addr = |k: &str| serving[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
    let (grpc, admin) = (addr("grpc"), addr("admin"));
    eventually(WAIT, "ready with keys", async || {
        admin_get(admin, "/ready").await.0 == 200
            && admin_get(admin, "/metrics")
                .await
                .1
                .contains("certmint_service_account_keys 1")
    })
    .await;

    kube.set_outage(Outage::RefuseConnections);
    let id = linkerd_name("shop", "web");
    for i in 0..3 {
        let mut spec = TokenSpec::new("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
        spec.pod = Some(format!("web-{i}"));
        let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
        let mut c = client(grpc).await;
        certify(&mut c, &id, kube.mint(&spec), csr)
            .await
            .expect("certified while the API server refuses connections");
    }
    // One summary line for the three fallbacks (the interval is 10 s).
    let summary = wait_line(
        &logs,
        "tokens accepted on local verification alone: no TokenReview answer could be had",
        WAIT,
    );
    assert_eq!(summary["total"], 3, "{summary}");
    assert_eq!(summary["unreachable"], 3, "{summary}");
    let _ = child.kill();
    let _ = child.wait();
}
