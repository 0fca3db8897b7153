//! An idle file source stays idle: certmint's own reads of the issuer and anchor files
//! must not wake the watcher, and a refused file is logged once, not on every re-read.

use certmint_testsupport as common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use certmint::app::Server;
use common::pki::Ca;
use common::*;

const WAIT: Duration = Duration::from_secs(20);
/// Long enough for the old defect (a re-read every ~100 ms) to show dozens of reads.
const IDLE: Duration = Duration::from_secs(3);

fn count(server: &Server, family: &str, result: &str) -> u64 {
    let needle = format!("certmint_{family}_total{{source=\"files\",result=\"{result}\"}} ");
    server
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Every reload attempt of both sources, whatever its result.
fn attempts(server: &Server) -> u64 {
    let results = ["applied", "rejected", "unchanged", "missing", "deleted"];
    ["issuer_reloads", "trust_anchor_reloads"]
        .iter()
        .flat_map(|f| results.iter().map(move |r| count(server, f, r)))
        .sum()
}

/// Log output captured from everything that runs on this (current-thread) runtime.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("warn,certmint=info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines_with(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).count()
    }
}

fn slow_rereads(files: &CaFiles) -> certmint::config::Config {
    let mut c = files.config();
    c.issuer.reload_interval = Duration::from_secs(3600);
    c.trust_anchors.reload_interval = Duration::from_secs(3600);
    c
}

#[tokio::test]
async fn an_idle_file_source_does_not_read_its_files_again() {
    install_crypto();
    let files = CaFiles::new();
    let root = Ca::root("root");
    files.write_anchors(&root.cert_pem);
    let first = root.issuer("first");
    files.write_issuer(&first.cert_pem, &first.key_pem);
    let server = Server::start(slow_rereads(&files)).await.unwrap();
    let s = &server;
    eventually(WAIT, "ready", async || s.readiness.check().is_ok()).await;
    // Let the notifications of the test's own writes settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = attempts(s);
    tokio::time::sleep(IDLE).await;
    assert_eq!(attempts(s), before, "reload attempts while nothing changed");

    // A real change is still seen at once, without waiting for the hour-long re-read.
    let second = root.issuer("second");
    files.write_issuer(&second.cert_pem, &second.key_pem);
    eventually(WAIT, "the new issuer", async || {
        files
            .certify_web(s.grpc_addr)
            .await
            .is_ok_and(|r| r.intermediate_certificates[0] == second.der)
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_issuer_file_is_logged_once_until_its_content_changes() {
    install_crypto();
    let logs = Captured::default();
    let _guard = logs.install();
    let files = CaFiles::new();
    let root = Ca::root("root");
    files.write_anchors(&root.cert_pem);
    let now = SystemTime::now();
    let day = Duration::from_secs(86400);
    let expired = root.issuer_valid("expired", now - 3 * day, now - day);
    files.write_issuer(&expired.cert_pem, &expired.key_pem);
    let server = Server::start(slow_rereads(&files)).await.unwrap();
    let s = &server;
    eventually(WAIT, "the expired issuer to be refused", async || {
        count(s, "issuer_reloads", "rejected") >= 1
    })
    .await;
    tokio::time::sleep(IDLE).await;
    const REFUSED: &str = "issuer update rejected";
    assert_eq!(logs.lines_with(REFUSED), 1, "one line for one refused file");

    // Rewriting the same content is a real change: it is read and counted again, but the
    // same refusal is not logged again within the reload interval.
    let rejected = count(s, "issuer_reloads", "rejected");
    files.write_issuer(&expired.cert_pem, &expired.key_pem);
    eventually(WAIT, "the rewrite to be read", async || {
        count(s, "issuer_reloads", "rejected") > rejected
    })
    .await;
    assert_eq!(logs.lines_with(REFUSED), 1);

    // Different refused content is news.
    let other = root.issuer_valid("also expired", now - 3 * day, now - day);
    files.write_issuer(&other.cert_pem, &other.key_pem);
    eventually(WAIT, "the new refusal to be logged", async || {
        logs.lines_with(REFUSED) == 2
    })
    .await;
    server.shutdown().await.unwrap();
}
