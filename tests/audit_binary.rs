//! The audit trail from the `certmint serve` process (issue 12): TokenReview answers with
//! the pod reach the records, stdout carries the records apart from the JSON diagnostic
//! log on stderr, and SIGTERM drains the queue and closes the chain.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use fake_kube::{FakeKube, TokenSpec};
use rcgen::KeyPair;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn serve_records_tokenreview_callers_on_file_and_stdout_and_drains_on_sigterm() {
    let kube = FakeKube::start().await;
    let files = CaFiles::with_fresh_ca();
    let kubeconfig = files.kubeconfig(|p| kube.write_kubeconfig(p));
    let audit = files
        .dir
        .path()
        .join("audit")
        .join("{replica}")
        .join("audit.jsonl");
    let extra = format!(
        "limits:\n  shutdown_grace: 3s\n\
         authn:\n  kubernetes:\n    local_verification: off\n\
         audit:\n  enabled: true\n  stdout: true\n  file:\n    path: {}\n",
        audit.display(),
    );
    let config = files.write_serve_yaml(&kubeconfig, &extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .env("POD_NAME", "certmint-0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let v: Value = serde_json::from_str(&line).expect("stderr holds only JSON log lines");
            if v["message"] == "certmint serving" {
                let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                let _ = tx.send((addr("grpc"), addr("admin")));
            }
            all.push(v);
        }
        all
    });
    let (grpc, _admin) = rx.recv_timeout(WAIT).expect("certmint serve did not start");

    let id = linkerd_name("shop", "web");
    let mut spec = TokenSpec::new("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    spec.pod = Some("web-0".into());
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let mut c = client(grpc).await;
    certify(&mut c, &id, kube.mint(&spec), csr).await.unwrap();
    drop(c); // an open connection holds the graceful shutdown for up to shutdown_grace

    sigterm(&child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let _ = logs.join();

    let path = files
        .dir
        .path()
        .join("audit")
        .join("certmint-0")
        .join("audit.jsonl");
    let file = std::fs::read_to_string(&path).expect("{replica} is the pod name");
    assert_eq!(stdout, file, "stdout carries exactly the file's records");
    let recs: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["kind"], "start");
    assert_eq!(recs[0]["replica"], "certmint-0");
    let issued = &recs[1];
    assert_eq!(issued["code"], "OK");
    assert_eq!(issued["caller"]["method"], "tokenreview");
    assert_eq!(issued["caller"]["pod_name"], "web-0");
    assert!(
        issued["caller"]["pod_uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    let last = recs.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["last"].as_bool()),
        (Some("checkpoint"), Some(true))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
