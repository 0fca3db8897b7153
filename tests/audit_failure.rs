//! When the audit sink fails (issue 12): `refuse` issues nothing and turns not ready until
//! the sink writes again; `continue` issues and counts what went unrecorded. Failures come
//! from a test hook (as a full disk would fail writes) and from /dev/full, a real device
//! whose every write fails with ENOSPC.

use certmint_testsupport as common;
use certmint_testsupport::audit as audit_support;

use std::path::Path;
use std::time::Duration;

use audit_support::*;
use certmint::app::Server;
use certmint_audit::OnFailure;
use common::*;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(20);

async fn metric(server: &Server, name: &str) -> String {
    let (_, body) = admin_get(server.admin_addr, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
        .to_owned()
}

#[tokio::test]
async fn refuse_answers_unavailable_and_not_ready_until_the_sink_writes_again() {
    install_crypto();
    let files = ca_files();
    let path = files.dir.path().join("audit").join("audit.jsonl");
    let server = Server::start(audit_config(&files, &path, "r-1", OnFailure::Refuse))
        .await
        .unwrap();
    let audit = server.audit.clone().unwrap();
    files.certify_web(server.grpc_addr).await.unwrap();
    assert_eq!(admin_get(server.admin_addr, "/ready").await.0, 200);

    audit.inject_write_failures(true);
    let err = files.certify_web(server.grpc_addr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().starts_with("audit trail unavailable"),
        "{}",
        err.message()
    );
    assert_eq!(err.message().lines().count(), 1);
    let (code, body) = admin_get(server.admin_addr, "/ready").await;
    assert_eq!(code, 503);
    assert!(body.contains("audit records cannot be written"), "{body}");
    // A refusal keeps its own code: the caller learns what is wrong with its request.
    let mut c = client(server.grpc_addr).await;
    let id = linkerd_name("shop", "web");
    let csr = CsrSpec::for_identity(&id).build(&rcgen::KeyPair::generate().unwrap());
    let err = certify(&mut c, &id, "not-a-jwt", csr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let failed = metric(&server, "certmint_audit_records_total{result=\"failed\"}").await;
    assert!(failed.ends_with(" 2"), "{failed}");

    audit.inject_write_failures(false);
    let s = &server;
    eventually(
        WAIT,
        "ready again once a probe write succeeds",
        async || admin_get(s.admin_addr, "/ready").await.0 == 200,
    )
    .await;
    files.certify_web(server.grpc_addr).await.unwrap();
    server.shutdown().await.unwrap();

    // Nothing that failed entered the chain: the file is intact and holds both issued.
    let (code, out) = cli(&["audit", "verify", path_str(&path)]);
    assert_eq!(code, 0, "{out}");
    let issued = records(&path)
        .iter()
        .filter(|r| r["kind"] == "certify" && r["code"] == "OK")
        .count();
    assert_eq!(issued, 2);
}

#[tokio::test]
async fn continue_issues_and_counts_certificates_without_a_record() {
    install_crypto();
    let files = ca_files();
    let path = files.dir.path().join("audit.jsonl");
    let server = Server::start(audit_config(&files, &path, "r-1", OnFailure::Continue))
        .await
        .unwrap();
    let audit = server.audit.clone().unwrap();
    audit.inject_write_failures(true);
    files.certify_web(server.grpc_addr).await.unwrap();
    files.certify_web(server.grpc_addr).await.unwrap();
    let unrecorded = metric(&server, "certmint_audit_unrecorded_certificates_total").await;
    assert!(unrecorded.ends_with(" 2"), "{unrecorded}");
    assert_eq!(
        metric(&server, "certmint_audit_sink_up").await,
        "certmint_audit_sink_up 0"
    );
    assert_eq!(
        admin_get(server.admin_addr, "/ready").await.0,
        200,
        "continue stays ready"
    );
    audit.inject_write_failures(false);
    server.shutdown().await.unwrap();
    let (code, out) = cli(&["audit", "verify", path_str(&path)]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn a_full_disk_refuses_or_continues_as_configured() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full on this machine");
        return;
    }
    install_crypto();
    let files = ca_files();
    let server = Server::start(audit_config(&files, full, "r-1", OnFailure::Refuse))
        .await
        .unwrap();
    let err = files.certify_web(server.grpc_addr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert_eq!(admin_get(server.admin_addr, "/ready").await.0, 503);
    // Probes run once a second: none may bring the replica back while nothing fits.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(admin_get(server.admin_addr, "/ready").await.0, 503);
    }
    server.shutdown().await.unwrap();

    let server = Server::start(audit_config(&files, full, "r-2", OnFailure::Continue))
        .await
        .unwrap();
    files.certify_web(server.grpc_addr).await.unwrap();
    let unrecorded = metric(&server, "certmint_audit_unrecorded_certificates_total").await;
    assert!(unrecorded.ends_with(" 1"), "{unrecorded}");
    server.shutdown().await.unwrap();
}
