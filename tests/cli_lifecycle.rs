//! The credential lifecycle commands, run as the real binary on generated material:
//! `ca root`, `ca issuer`, `ca bundle`, `check` (files and live objects) and `inspect`
//! (files and a running certmint over TLS).

// Shared with other test binaries; this one uses only part of each.
#[allow(unused_imports)]
use certmint_testsupport::fake_kube;
use certmint_testsupport::lifecycle;
use certmint_testsupport::pki;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use lifecycle::*;
use pki::Ca;
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86_400);
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const SERVER_NAME: &str = "certmint.linkerd.serviceaccount.identity.linkerd.cluster.local";

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `ca root` + `ca issuer` with default settings into `dir` (ca.crt/ca.key, issuer/).
fn root_and_issuer(dir: &std::path::Path) {
    let (ca, key) = (p(&dir.join("ca.crt")), p(&dir.join("ca.key")));
    certmint(&["ca", "root", "--cert", &ca, "--key", &key]).expect(0);
    let (crt, tkey) = (
        p(&dir.join("issuer/tls.crt")),
        p(&dir.join("issuer/tls.key")),
    );
    certmint(&[
        "ca",
        "issuer",
        "--ca-cert",
        &ca,
        "--ca-key",
        &key,
        "--cert",
        &crt,
        "--key",
        &tkey,
    ])
    .expect(0);
}

fn check_files(anchors: &std::path::Path, issuer: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "check".to_string(),
        "--trust-anchors".into(),
        p(anchors),
        "--issuer-dir".into(),
        p(issuer),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    certmint(&args)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:#?}"))
}

// ---- ca root / ca issuer -------------------------------------------------------------

#[test]
fn ca_root_creates_a_self_signed_ca_with_a_private_pkcs8_key() {
    let dir = tmp();
    let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
    let run = certmint(&[
        "ca",
        "root",
        "--cert",
        &p(&cert),
        "--key",
        &p(&key),
        "--name",
        "test root",
    ])
    .expect(0);
    assert!(run.stdout.contains("CN=test root"), "{run:#?}");

    let f = facts_of_file(&cert);
    assert_eq!(f.subject, "CN=test root");
    assert_eq!(f.issuer, f.subject, "self-signed");
    assert!(f.ca && f.key_cert_sign && f.crl_sign, "{f:?}");
    assert!(f.ski.is_some(), "a root needs a SubjectKeyIdentifier");
    assert_eq!(f.lifetime, 3650 * DAY, "default lifetime 87600h");
    assert_eq!((f.key_alg.as_str(), f.key_bits), (OID_EC, 256));
    assert_eq!(mode(&key), 0o600);
    assert!(read(&key).starts_with(&pkcs8_header()), "PKCS#8 PEM");
}

#[test]
fn ca_root_refuses_to_overwrite_unless_forced() {
    let dir = tmp();
    let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
    let args = |force: bool| {
        let mut a = vec![
            "ca".into(),
            "root".into(),
            "--cert".into(),
            p(&cert),
            "--key".into(),
            p(&key),
        ];
        if force {
            a.push("--force".to_string());
        }
        a
    };
    std::fs::write(&key, "not a key").unwrap();
    let run = certmint(&args(false)).expect(2);
    assert!(
        run.stderr.contains("already exists") && run.stderr.contains("--force"),
        "{run:#?}"
    );
    assert_eq!(read(&key), "not a key", "nothing may be overwritten");
    assert!(!cert.exists());

    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    certmint(&args(true)).expect(0);
    let first = read(&cert);
    assert_eq!(mode(&key), 0o600, "a replaced key file is private too");
    certmint(&args(false)).expect(2);
    assert_eq!(read(&cert), first);
    certmint(&args(true)).expect(0);
    assert_ne!(read(&cert), first, "--force writes a new anchor");
}

#[test]
fn ca_root_makes_p384_and_rsa3072_keys() {
    let dir = tmp();
    for (kt, alg, bits) in [("p384", OID_EC, 384), ("rsa3072", OID_RSA, 3072)] {
        let cert = dir.path().join(format!("{kt}.crt"));
        let key = dir.path().join(format!("{kt}.key"));
        certmint(&[
            "ca",
            "root",
            "--cert",
            &p(&cert),
            "--key",
            &p(&key),
            "--key-type",
            kt,
            "--lifetime",
            "48h",
        ])
        .expect(0);
        let f = facts_of_file(&cert);
        assert_eq!((f.key_alg.as_str(), f.key_bits), (alg, bits), "{kt}");
        assert_eq!(f.lifetime, 2 * DAY);
        assert!(read(&key).starts_with(&pkcs8_header()));
    }
}

#[test]
fn ca_issuer_is_signed_by_the_root_and_passes_check() {
    let dir = tmp();
    root_and_issuer(dir.path());
    let root = facts_of_file(&dir.path().join("ca.crt"));
    let issuer = facts_of_file(&dir.path().join("issuer/tls.crt"));
    assert_eq!(issuer.issuer, root.subject);
    assert!(
        issuer.ca && issuer.key_cert_sign && issuer.crl_sign,
        "{issuer:?}"
    );
    assert_eq!(issuer.path_len, Some(0), "default --path-len 0");
    assert!(issuer.ski.is_some());
    assert_eq!(issuer.aki, root.ski, "AKI names the root's key");
    assert_eq!(issuer.lifetime, 365 * DAY, "default lifetime 8760h");
    assert_eq!(mode(&dir.path().join("issuer/tls.key")), 0o600);

    let run = check_files(&dir.path().join("ca.crt"), &dir.path().join("issuer"), &[]).expect(0);
    assert!(run.stdout.contains("result: healthy (exit 0)"), "{run:#?}");
    assert!(
        run.stdout
            .contains("chains to trust anchor CN=root.linkerd.cluster.local")
    );
    let run = check_files(
        &dir.path().join("ca.crt"),
        &dir.path().join("issuer"),
        &["--output", "json"],
    )
    .expect(0);
    let report = json(&run);
    assert_eq!(report["result"], "ok");
    assert_eq!(report["exit_code"], 0);
    let roles: Vec<&str> = report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["trust anchor", "issuer"]);
}

#[test]
fn ca_issuer_is_clamped_to_the_root_with_a_warning() {
    let dir = tmp();
    let (ca, key) = (p(&dir.path().join("ca.crt")), p(&dir.path().join("ca.key")));
    certmint(&[
        "ca",
        "root",
        "--cert",
        &ca,
        "--key",
        &key,
        "--lifetime",
        "72h",
    ])
    .expect(0);
    let crt = dir.path().join("issuer/tls.crt");
    let run = certmint(&[
        "ca",
        "issuer",
        "--ca-cert",
        &ca,
        "--ca-key",
        &key,
        "--cert",
        &p(&crt),
        "--key",
        &p(&dir.path().join("issuer/tls.key")),
    ])
    .expect(0);
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("clamped"),
        "{run:#?}"
    );
    let root = facts_of_file(&dir.path().join("ca.crt"));
    assert_eq!(facts_of_file(&crt).not_after, root.not_after);
}

#[test]
fn ca_issuer_refuses_a_mismatched_key_garbage_and_an_expired_ca() {
    let dir = tmp();
    root_and_issuer(dir.path());
    let ca = p(&dir.path().join("ca.crt"));
    let out = |n: &str| p(&dir.path().join(format!("new/{n}")));
    let issuer = |ca_cert: &str, ca_key: &str| {
        certmint(&[
            "ca",
            "issuer",
            "--ca-cert",
            ca_cert,
            "--ca-key",
            ca_key,
            "--cert",
            &out("tls.crt"),
            "--key",
            &out("tls.key"),
        ])
    };
    let wrong_key = p(&dir.path().join("issuer/tls.key"));
    let run = issuer(&ca, &wrong_key).expect(2);
    assert!(
        run.stderr.contains("does not belong to --ca-cert"),
        "{run:#?}"
    );

    let garbage = p(&write(dir.path(), "garbage.pem", "hello\n"));
    let run = issuer(&garbage, &p(&dir.path().join("ca.key"))).expect(2);
    assert!(run.stderr.contains("no PEM certificate found"), "{run:#?}");
    let run = issuer(&ca, &garbage).expect(2);
    assert!(
        run.stderr.contains("--ca-key") && run.stderr.contains("no PEM private key"),
        "{run:#?}"
    );

    let now = SystemTime::now();
    let old = Ca::root_valid("old root", now - 20 * DAY, now - DAY);
    let (old_crt, old_key) = (
        write(dir.path(), "old.crt", &old.cert_pem),
        write(dir.path(), "old.key", &old.key_pem),
    );
    let run = issuer(&p(&old_crt), &p(&old_key)).expect(2);
    assert!(run.stderr.contains("not valid now"), "{run:#?}");
    assert!(
        !dir.path().join("new/tls.key").exists(),
        "nothing written on failure"
    );
    assert_eq!(run.stderr.lines().count(), 1, "one-line error: {run:#?}");
}

#[test]
fn ca_issuer_under_an_intermediate_writes_the_chain_serve_needs() {
    let dir = tmp();
    let root = Ca::root("external root"); // no path length limit
    let ca = p(&write(dir.path(), "root.crt", &root.cert_pem));
    let ca_key = p(&write(dir.path(), "root.key", &root.key_pem));
    let (mid, mid_key) = (dir.path().join("mid.crt"), dir.path().join("mid.key"));
    certmint(&[
        "ca",
        "issuer",
        "--ca-cert",
        &ca,
        "--ca-key",
        &ca_key,
        "--cert",
        &p(&mid),
        "--key",
        &p(&mid_key),
        "--name",
        "mid",
        "--path-len",
        "1",
    ])
    .expect(0);
    // The signing CA's file holds the intermediate and its root, as a CA bundle often does.
    let mid_chain = write(dir.path(), "mid-chain.pem", &(read(&mid) + &root.cert_pem));
    let crt = dir.path().join("issuer/tls.crt");
    certmint(&[
        "ca",
        "issuer",
        "--ca-cert",
        &p(&mid_chain),
        "--ca-key",
        &p(&mid_key),
        "--cert",
        &p(&crt),
        "--key",
        &p(&dir.path().join("issuer/tls.key")),
    ])
    .expect(0);
    let chain: Vec<String> = ders(&read(&crt)).iter().map(|d| facts(d).subject).collect();
    assert_eq!(
        chain,
        ["CN=identity.linkerd.cluster.local", "CN=mid"],
        "issuer, then the intermediate; no root"
    );
    check_files(
        &dir.path().join("root.crt"),
        &dir.path().join("issuer"),
        &[],
    )
    .expect(0);
}

// ---- ca bundle -------------------------------------------------------------------------

#[test]
fn ca_bundle_deduplicates_sorts_by_expiry_and_accepts_only_cas() {
    let dir = tmp();
    let now = SystemTime::now();
    let long = Ca::root_valid("long root", now - DAY, now + 3000 * DAY);
    let short = Ca::root_valid("short root", now - DAY, now + 100 * DAY);
    let a = write(dir.path(), "a.pem", &long.cert_pem);
    let b = write(
        dir.path(),
        "b.pem",
        &format!("{}{}", short.cert_pem, long.cert_pem),
    );
    let run = certmint(&["ca", "bundle", &p(&a), &p(&b)]).expect(0);
    let subjects: Vec<String> = ders(&run.stdout).iter().map(|d| facts(d).subject).collect();
    assert_eq!(
        subjects,
        ["CN=short root", "CN=long root"],
        "earliest expiry first, no repeats"
    );
    assert!(run.stderr.contains("1 duplicate"), "{run:#?}");
    assert!(run.stderr.contains("CN=short root") && run.stderr.contains("CN=long root"));

    let leaf = write(
        dir.path(),
        "leaf.pem",
        &leaf_pem(
            &long.cert_pem,
            &long.key_pem,
            "a.example",
            "spiffe://x/ns/a/sa/b",
        ),
    );
    let run = certmint(&["ca", "bundle", &p(&a), &p(&leaf)]).expect(2);
    assert!(run.stderr.contains("is not a CA certificate"), "{run:#?}");
    assert!(run.stdout.is_empty(), "no partial bundle");
    let garbage = write(
        dir.path(),
        "g.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let run = certmint(&["ca", "bundle", &p(&garbage)]).expect(2);
    assert!(run.stderr.contains("g.pem"), "{run:#?}");
    let expired = Ca::root_valid("expired root", now - 9 * DAY, now - DAY);
    let e = write(dir.path(), "e.pem", &expired.cert_pem);
    let run = certmint(&["ca", "bundle", &p(&a), &p(&e)]).expect(2);
    assert!(
        run.stderr.contains("expired") && run.stderr.contains("leave it out"),
        "{run:#?}"
    );
}

// ---- check -----------------------------------------------------------------------------

#[test]
fn check_rejects_an_issuer_not_under_the_anchors() {
    let dir = tmp();
    let (root, other) = (Ca::root("root"), Ca::root("other root"));
    let issuer = other.issuer("stray issuer");
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let run = check_files(&anchors, &idir, &[]).expect(2);
    let last_finding = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("ERROR"))
        .unwrap();
    assert!(
        last_finding.contains("does not chain to a current trust anchor"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("result: invalid or expired (exit 2)"));
}

#[test]
fn check_rejects_a_mismatched_issuer_key() {
    let dir = tmp();
    let root = Ca::root("root");
    let (one, two) = (root.issuer("one"), root.issuer("two"));
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let idir = issuer_dir(dir.path(), "issuer", &one.cert_pem, &two.key_pem);
    let run = check_files(&anchors, &idir, &["--output", "json"]).expect(2);
    let report = json(&run);
    let worst = report["findings"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(worst["severity"], "error");
    assert_eq!(worst["object"], "issuer key");
    assert!(
        worst["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{worst}"
    );
}

#[test]
fn check_rejects_an_expired_issuer() {
    let dir = tmp();
    let now = SystemTime::now();
    let root = Ca::root("root");
    let issuer = root.issuer_valid("old issuer", now - 400 * DAY, now - DAY);
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let run = check_files(&anchors, &idir, &[]).expect(2);
    assert!(
        run.stdout.contains("CN=old issuer") && run.stdout.contains("expired"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("certmint ca issuer"),
        "says what to do: {run:#?}"
    );
}

#[test]
fn check_warns_when_an_anchor_expires_within_the_window() {
    let dir = tmp();
    let now = SystemTime::now();
    let root = Ca::root_valid("soon root", now - DAY, now + 30 * DAY);
    let issuer = root.issuer_valid("issuer", now - DAY, now + 20 * DAY);
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let run = check_files(&anchors, &idir, &[]).expect(1);
    assert!(
        run.stdout.contains("WARN    trust anchor CN=soon root"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("within --warn-within 60d"));
    let report = json(&check_files(&anchors, &idir, &["--output", "json"]).expect(1));
    assert_eq!(report["result"], "warn");
    check_files(&anchors, &idir, &["--warn-within", "7d"]).expect(0);
}

#[test]
fn check_warns_when_the_issuer_chain_expires_before_a_leaf_would() {
    let dir = tmp();
    let now = SystemTime::now();
    let root = Ca::root("root");
    let issuer = root.issuer_valid("issuer", now - DAY, now + Duration::from_secs(10 * 3600));
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let run = check_files(&anchors, &idir, &["--warn-within", "1h"]).expect(1);
    assert!(run.stdout.contains("sooner than a 24h leaf"), "{run:#?}");
    check_files(
        &anchors,
        &idir,
        &["--warn-within", "1h", "--lifetime", "1h"],
    )
    .expect(0);
}

#[test]
fn check_reports_garbage_pem_clearly() {
    let dir = tmp();
    let root = Ca::root("root");
    let issuer = root.issuer("issuer");
    let anchors = write(dir.path(), "ca.crt", &root.cert_pem);
    let garbage = write(dir.path(), "garbage.pem", "\u{0}\u{1}garbage");
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let run = check_files(&garbage, &idir, &[]).expect(2);
    assert!(run.stdout.contains("no PEM certificate found"), "{run:#?}");

    let bad_key = issuer_dir(dir.path(), "badkey", &issuer.cert_pem, &bogus_key_pem());
    let run = check_files(&anchors, &bad_key, &[]).expect(2);
    assert!(
        run.stdout.contains("ERROR") && run.stdout.contains("issuer key"),
        "{run:#?}"
    );

    let run = check_files(&dir.path().join("missing.pem"), &idir, &[]).expect(2);
    assert!(
        run.stderr.contains("cannot read --trust-anchors"),
        "{run:#?}"
    );
    let run = check_files(&anchors, dir.path(), &[]).expect(2);
    assert!(
        run.stderr
            .contains("neither tls.crt/tls.key nor crt.pem/key.pem"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn check_reads_the_live_secret_and_configmap() {
    let kube = fake_kube::FakeKube::start().await;
    let dir = tmp();
    let root = Ca::root("root");
    let issuer = root.issuer("issuer");
    let data = BTreeMap::from([
        ("tls.crt".to_string(), issuer.cert_pem.clone().into_bytes()),
        ("tls.key".to_string(), issuer.key_pem.clone().into_bytes()),
    ]);
    kube.put_secret("certmint", "certmint-issuer", "kubernetes.io/tls", data);
    let bundle = BTreeMap::from([("ca-bundle.crt".to_string(), root.cert_pem.clone())]);
    kube.put_configmap("certmint", "certmint-trust-anchors", bundle);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    let args = |extra: &[&str]| -> Vec<String> {
        let base = [
            "check",
            "--kubernetes",
            "--kubeconfig",
            &p(&kubeconfig),
            "--namespace",
            "certmint",
        ];
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };

    let run = certmint_async(args(&[])).await.expect(0);
    assert!(
        run.stdout.contains("Secret certmint/certmint-issuer"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("ConfigMap certmint/certmint-trust-anchors key ca-bundle.crt")
    );
    // Before certmint runs, the interlock is not checked (and that is not a finding).
    assert!(
        run.stdout
            .contains("the trust interlock was not checked: no running certmint pod"),
        "{run:#?}"
    );

    let run = certmint_async(args(&["--secret", "nope"])).await.expect(2);
    assert!(
        run.stderr.contains("Secret certmint/nope not found"),
        "{run:#?}"
    );
    let run = certmint_async(args(&["--key", "roots.pem"]))
        .await
        .expect(2);
    assert!(run.stderr.contains("no such key"), "{run:#?}");
}

// ---- inspect ---------------------------------------------------------------------------

#[test]
fn inspect_shows_a_chain_and_whether_it_verifies() {
    let dir = tmp();
    let (root, other) = (Ca::root("root"), Ca::root("other"));
    let issuer = root.issuer("the issuer");
    let name = "web.default.serviceaccount.identity.linkerd.cluster.local";
    let spiffe = "spiffe://cluster.local/ns/default/sa/web";
    let chain = leaf_pem(&issuer.cert_pem, &issuer.key_pem, name, spiffe) + &issuer.cert_pem;
    let file = p(&write(dir.path(), "tls.crt", &chain));
    let anchors = p(&write(dir.path(), "ca.crt", &root.cert_pem));
    let wrong = p(&write(dir.path(), "other.crt", &other.cert_pem));

    let run = certmint(&["inspect", &file, "--trust-anchors", &anchors]).expect(0);
    for want in [
        "certificate 1 of 2",
        "certificate 2 of 2",
        &format!("DNS:{name}"),
        &format!("URI:{spiffe}"),
        "CN=the issuer",
        "ECDSA P-256",
        "serverAuth, clientAuth",
        "verified against",
        ": yes: chains to trust anchor CN=root",
    ] {
        assert!(run.stdout.contains(want), "missing {want:?}: {run:#?}");
    }
    certmint(&[
        "inspect",
        &file,
        "--trust-anchors",
        &anchors,
        "--server-name",
        name,
    ])
    .expect(0);
    let run = certmint(&[
        "inspect",
        &file,
        "--trust-anchors",
        &anchors,
        "--server-name",
        "other.example",
    ])
    .expect(1);
    assert!(
        run.stdout.contains("not valid for other.example"),
        "{run:#?}"
    );
    let run = certmint(&["inspect", &file, "--trust-anchors", &wrong]).expect(1);
    assert!(
        run.stdout.contains(": NO: ") && run.stdout.contains("UnknownIssuer"),
        "{run:#?}"
    );

    let report = json(
        &certmint(&[
            "inspect",
            &file,
            "--trust-anchors",
            &anchors,
            "--output",
            "json",
        ])
        .expect(0),
    );
    let leaf = &report["certificates"][0];
    assert_eq!(leaf["uris"][0], spiffe);
    assert_eq!(leaf["dns_names"][0], name);
    assert!(leaf["remaining_seconds"].as_i64().unwrap() > 80_000);
    assert_eq!(leaf["fingerprint_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["verification"]["verified"], true);

    // A CA file (an issuer) is verified by its signatures.
    let idir = issuer_dir(dir.path(), "issuer", &issuer.cert_pem, &issuer.key_pem);
    let icrt = p(&idir.join("tls.crt"));
    certmint(&["inspect", &icrt, "--trust-anchors", &anchors]).expect(0);
    let run = certmint(&["inspect", &icrt, "--trust-anchors", &wrong]).expect(1);
    assert!(
        run.stdout
            .contains("is not signed by a current trust anchor"),
        "{run:#?}"
    );
}

#[test]
fn inspect_reports_garbage_clearly() {
    let dir = tmp();
    for (name, contents) in [
        ("g.pem", "garbage"),
        ("k.pem", &bogus_key_pem()),
        ("d.der", "\u{30}\u{3}\u{2}\u{1}\u{1}"),
    ] {
        let run = certmint(&["inspect", &p(&write(dir.path(), name, contents))]).expect(2);
        assert!(
            run.stderr
                .starts_with(&format!("certmint: {}", p(&dir.path().join(name)))),
            "{run:#?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    }
    let run = certmint(&["inspect", "--connect", "no-port"]).expect(2);
    assert!(run.stderr.contains("expected HOST:PORT"), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_connect_shows_and_verifies_the_served_chain() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tmp();
    let paths = certmint::cli::dev::DevPaths::new(dir.path());
    certmint::cli::dev::ensure_material(&paths).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = certmint::cli::dev::dev_config(&paths, any, any, true);
    let server = certmint::app::Server::start(config).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.readiness.check().is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server not ready in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = server.grpc_addr.to_string();
    let anchors = p(&paths.anchors);
    let inspect = |extra: &[&str]| -> Vec<String> {
        let base = ["inspect", "--connect", &addr, "--trust-anchors", &anchors];
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };

    let run = certmint_async(inspect(&["--server-name", SERVER_NAME]))
        .await
        .expect(0);
    assert!(
        run.stdout.contains("TLS 1.3") && run.stdout.contains("ALPN h2"),
        "{run:#?}"
    );
    assert!(run.stdout.contains(&format!("DNS:{SERVER_NAME}")));
    assert!(run.stdout.contains("CN=certmint dev issuer"));
    assert!(
        run.stdout.contains(&format!("valid for {SERVER_NAME}")),
        "{run:#?}"
    );

    let report = json(
        &certmint_async(inspect(&["--server-name", SERVER_NAME, "--output", "json"]))
            .await
            .expect(0),
    );
    assert_eq!(report["verification"]["verified"], true);
    assert_eq!(report["tls"]["alpn"], "h2");
    assert_eq!(report["certificates"].as_array().unwrap().len(), 2);

    let run = certmint_async(inspect(&[])).await.expect(1);
    assert!(
        run.stdout.contains("--server-name"),
        "an IP is not the server's name: {run:#?}"
    );
    let other = Ca::root("other");
    let wrong = p(&write(dir.path(), "other.crt", &other.cert_pem));
    let args = vec![
        "inspect".into(),
        "--connect".into(),
        addr.clone(),
        "--server-name".into(),
        SERVER_NAME.into(),
        "--trust-anchors".into(),
        wrong,
    ];
    let run = certmint_async(args).await.expect(1);
    assert!(run.stdout.contains("UnknownIssuer"), "{run:#?}");

    server.shutdown().await.unwrap();
}
