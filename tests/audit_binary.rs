//! The audit trail from the `certmint serve` process (issue 12): TokenReview answers with
//! the pod reach the records, stdout carries the records apart from the JSON diagnostic
//! log on stderr, and SIGTERM drains the queue and closes the chain. With two sinks, a
//! file that cannot grow (the process's file-size limit lowered from outside, as a full
//! volume would) splits nothing: each sink's copy tells the same truth (issue 20).

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fake_kube::{FakeKube, TokenSpec};
use rcgen::KeyPair;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A `certmint serve` process with a file and a stdout sink, its stderr read for the
/// addresses it serves on.
struct Serve {
    child: Child,
    grpc: SocketAddr,
    admin: SocketAddr,
    logs: std::thread::JoinHandle<Vec<Value>>,
}

impl Serve {
    /// Starts `certmint serve` with `audit` settings under `audit:`; SIGXFSZ is ignored
    /// (as a shell's `trap '' XFSZ`), so that a write past the file-size limit fails with
    /// EFBIG as on a full disk instead of killing the process.
    fn start(files: &CaFiles, kubeconfig: &Path, audit: &str) -> Self {
        let extra = format!(
            "limits:\n  shutdown_grace: 3s\n\
             authn:\n  kubernetes:\n    local_verification: off\n\
             audit:\n  enabled: true\n{audit}"
        );
        let config = files.write_serve_yaml(kubeconfig, &extra);
        let mut child = Command::new("sh")
            .args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_certmint"))
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
                let v: Value =
                    serde_json::from_str(&line).expect("stderr holds only JSON log lines");
                if v["message"] == "certmint serving" {
                    let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                    let _ = tx.send((addr("grpc"), addr("admin")));
                }
                all.push(v);
            }
            all
        });
        let (grpc, admin) = rx.recv_timeout(WAIT).expect("certmint serve did not start");
        Self {
            child,
            grpc,
            admin,
            logs,
        }
    }

    /// SIGTERM; the records on stdout once the process has exited.
    fn stop(mut self) -> String {
        sigterm(&self.child);
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(self.child.wait().unwrap().success());
        let _ = self.logs.join();
        stdout
    }

    /// Sets the process's file-size limit (soft; the hard one stays unlimited).
    fn limit_file_size(&self, bytes: Option<u64>) {
        let soft = bytes.map_or("unlimited".to_owned(), |b| b.to_string());
        let status = Command::new("prlimit")
            .arg(format!("--pid={}", self.child.id()))
            .arg(format!("--fsize={soft}:unlimited"))
            .status()
            .expect("prlimit (util-linux) runs");
        assert!(status.success(), "prlimit --fsize={soft}");
    }
}

async fn certify_once(kube: &FakeKube, grpc: SocketAddr) -> Result<(), tonic::Status> {
    let id = linkerd_name("shop", "web");
    let mut spec = TokenSpec::new("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    spec.pod = Some("web-0".into());
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let mut c = client(grpc).await;
    certify(&mut c, &id, kube.mint(&spec), csr).await.map(drop)
}

fn verify_cli(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn parse(lines: &str) -> Vec<Value> {
    lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Serials of the issued certificates among `records`.
fn issued(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kind"] == "certify" && r["code"] == "OK")
        .map(|r| r["cert"]["serial"].as_str().unwrap().to_owned())
        .collect()
}

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
    let serve = Serve::start(
        &files,
        &kubeconfig,
        &format!("  stdout: true\n  file:\n    path: {}\n", audit.display()),
    );
    let grpc = serve.grpc;

    let id = linkerd_name("shop", "web");
    let mut spec = TokenSpec::new("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    spec.pod = Some("web-0".into());
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let mut c = client(grpc).await;
    certify(&mut c, &id, kube.mint(&spec), csr).await.unwrap();
    drop(c); // an open connection holds the graceful shutdown for up to shutdown_grace
    let stdout = serve.stop();

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

/// Issue 20 §1 at the process level: the file stops growing while stdout works; ten calls;
/// then the file grows again.
async fn a_file_that_cannot_grow(policy: &str) -> (Vec<Value>, Vec<Value>, String, usize) {
    let kube = FakeKube::start().await;
    let files = CaFiles::with_fresh_ca();
    let kubeconfig = files.kubeconfig(|p| kube.write_kubeconfig(p));
    let path = files.dir.path().join("audit.jsonl");
    let serve = Serve::start(
        &files,
        &kubeconfig,
        &format!(
            "  on_failure: {policy}\n  stdout: true\n  file:\n    path: {}\n",
            path.display()
        ),
    );
    certify_once(&kube, serve.grpc).await.unwrap();
    // Room for a few hundred bytes more: less than a record.
    let size = std::fs::metadata(&path).unwrap().len();
    serve.limit_file_size(Some(size + 200));
    let mut refused = 0;
    for _ in 0..10 {
        match certify_once(&kube, serve.grpc).await {
            Ok(()) => {}
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{}", s.message());
                refused += 1;
            }
        }
    }
    serve.limit_file_size(None);
    let admin = serve.admin;
    eventually(WAIT, "every sink writes again", async || {
        let ready = admin_get(admin, "/ready").await.0 == 200;
        ready
            && admin_get(admin, "/metrics")
                .await
                .1
                .contains("\ncertmint_audit_sink_up 1")
    })
    .await;
    certify_once(&kube, serve.grpc).await.unwrap();
    let stdout = serve.stop();
    let file = std::fs::read_to_string(&path).unwrap();
    let (code, out) = verify_cli(&path);
    assert_eq!(code, Some(0), "the file verifies on its own: {out}");
    let copy = files.dir.path().join("stdout.jsonl");
    std::fs::write(&copy, &stdout).unwrap();
    let (code, stdout_out) = verify_cli(&copy);
    assert_eq!(
        code,
        Some(0),
        "stdout's copy verifies on its own: {stdout_out}"
    );
    (parse(&file), parse(&stdout), out, refused)
}

#[tokio::test]
async fn refuse_with_two_sinks_writes_nothing_a_caller_did_not_get() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: no prlimit (util-linux) on this machine");
        return;
    }
    let (file, stdout, verified, refused) = a_file_that_cannot_grow("refuse").await;
    assert_eq!(
        refused, 10,
        "every call while the file cannot grow is refused"
    );
    assert_eq!(file, stdout, "both sinks hold the same lines");
    assert_eq!(
        issued(&stdout).len(),
        2,
        "only the two certificates callers got"
    );
    let gap = stdout
        .iter()
        .find(|r| r["kind"] == "gap")
        .expect("a gap record");
    assert_eq!(gap["unwritten"], 10);
    assert!(verified.contains("10 record(s)"), "{verified}");
}

#[tokio::test]
async fn continue_with_two_sinks_records_the_gap_in_the_sink_that_missed_it() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: no prlimit (util-linux) on this machine");
        return;
    }
    let (file, stdout, verified, refused) = a_file_that_cannot_grow("continue").await;
    assert_eq!(refused, 0);
    assert_eq!(issued(&stdout).len(), 12, "stdout holds every certificate");
    assert_eq!(issued(&file).len(), 2);
    let gap = file
        .iter()
        .find(|r| r["kind"] == "gap")
        .expect("a gap record");
    let missed = &gap["missed"][0];
    assert_eq!(missed["sink"], "file");
    let (from, to) = (
        missed["from"].as_u64().unwrap(),
        missed["to"].as_u64().unwrap(),
    );
    assert_eq!(to + 1 - from, 10, "{gap}");
    assert!(verified.contains("not a deletion"), "{verified}");
}
