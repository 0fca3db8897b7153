//! The HSM going away under a running certmint (issue 22), in a process of its own (the
//! module is initialised once per process and recovery re-initialises it): a logout from
//! another session, the token's directory taken away and put back, and a PIN the token
//! refuses. Each answers UNAVAILABLE and turns `/ready` false while no signature can be
//! made, and certmint signs again once the token is back, without a restart.

use certmint_testsupport as common;

use std::sync::Arc;
use std::time::Duration;

use certmint::app::Server;
use certmint_core::ca::ExternalKey;
use certmint_hsm::{Curve, HsmKeys};
use common::softhsm::{PIN, config, issuer_for, key_uri, softhsm};
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(40);

async fn ready(server: &Server) -> bool {
    admin_get(server.admin_addr, "/ready").await.0 == 200
}

async fn metric_value(server: &Server, series: &str) -> u64 {
    let (_, body) = admin_get(server.admin_addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

/// Logs the user out of `token` from a session of the test's own: login state is per
/// process, so every session of certmint's is logged out too.
fn log_out(module: &std::path::Path, token: &str) {
    let lib = Pkcs11::new(module).unwrap();
    let _ = lib.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = lib
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| lib.get_token_info(*s).unwrap().label().trim() == token)
        .unwrap();
    let session = lib.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    // Dropping `lib` does not finalise the module certmint shares.
}

#[tokio::test]
async fn rides_out_a_logout_a_token_that_goes_away_and_a_refused_pin() {
    let Some(soft) = softhsm() else { return };
    install_crypto();
    let token = soft.token("faults");
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, PIN).unwrap();
    let hsm = config(soft, &pin_file);
    let keys = HsmKeys::new(&hsm, Arc::default()).unwrap();
    let key: Arc<dyn ExternalKey> = Arc::new(
        keys.generate(&key_uri(&token, "issuer"), Curve::P256)
            .unwrap(),
    );
    let files = CaFiles::new();
    let root = pki::Ca::root("root");
    files.write_anchors(&root.cert_pem);
    let issuer = issuer_for(&root, key);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let mut cfg = files.config();
    cfg.hsm = Some(hsm);
    let server = start_ready(cfg).await;
    files.certify_web(server.grpc_addr).await.unwrap();
    let s = &server;

    // 1. A logout: the next signature fails, the key is found again after a login.
    log_out(&soft.module, &token);
    let first = files.certify_web(server.grpc_addr).await;
    if let Err(e) = &first {
        assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    }
    eventually(WAIT, "signing again after the logout", async || {
        files.certify_web(s.grpc_addr).await.is_ok()
    })
    .await;

    // 2. The token's directory goes away: UNAVAILABLE, not ready.
    let token_dir = soft.token_dir(&token);
    let away = dir.path().join("token-away");
    std::fs::rename(&token_dir, &away).unwrap();
    let err = files.certify_web(server.grpc_addr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("HSM"), "{}", err.message());
    eventually(WAIT, "not ready while the token is gone", async || {
        !ready(s).await
    })
    .await;
    let (_, why) = admin_get(server.admin_addr, "/ready").await;
    assert!(why.contains("HSM"), "{why}");
    // Still gone a while later: calls keep answering UNAVAILABLE, quickly.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let err = files.certify_web(server.grpc_addr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");

    // ... and comes back: ready and signing again without a restart.
    std::fs::rename(&away, &token_dir).unwrap();
    eventually(WAIT, "ready once the token is back", async || {
        ready(s).await
    })
    .await;
    files.certify_web(server.grpc_addr).await.unwrap();
    assert!(metric_value(s, "certmint_hsm_recoveries_total").await >= 2);
    assert!(
        metric_value(s, "certmint_hsm_signatures_total{result=\"unavailable\"}").await
            + metric_value(s, "certmint_hsm_signatures_total{result=\"error\"}").await
            >= 2
    );

    // 3. A PIN the token refuses: not ready, and not retried until the file changes.
    std::fs::write(&pin_file, "0000").unwrap();
    log_out(&soft.module, &token);
    let _ = files.certify_web(server.grpc_addr).await;
    eventually(WAIT, "not ready with a refused PIN", async || {
        !ready(s).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!ready(s).await, "a refused PIN keeps the replica out");
    std::fs::write(&pin_file, PIN).unwrap();
    eventually(WAIT, "ready once the PIN file is right", async || {
        ready(s).await
    })
    .await;
    files.certify_web(server.grpc_addr).await.unwrap();
    server.shutdown().await.unwrap();
}
