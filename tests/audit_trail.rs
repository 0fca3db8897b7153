//! The issuance audit trail through the real server (issue 12): what is recorded, and
//! `certmint audit verify` / `find` on the files, intact and tampered with. The servers run
//! once (a shared fixture); each test works on its own copy of their files.

use certmint_testsupport as common;
use certmint_testsupport::audit as audit_support;
use certmint_testsupport::audit::golden;

use std::path::{Path, PathBuf};

use certmint::app::Server;
use certmint_audit::OnFailure;

use audit_support::*;
use common::*;
use golden::{Golden, golden};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A copy of `lines` written to a fresh file in its own directory.
fn tampered(name: &str, lines: &[String]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_lines(&path, lines);
    (dir, path)
}

fn verify(files: &[&Path], key: Option<&Path>) -> (i32, String) {
    let mut args = vec!["audit", "verify"];
    if let Some(k) = key {
        args.extend(["--key", path_str(k)]);
    }
    args.extend(files.iter().map(|p| path_str(p)));
    cli(&args)
}

/// 1-based numbers of the lines whose kind is `kind`.
fn lines_of_kind(path: &Path, kind: &str) -> Vec<usize> {
    records(path)
        .iter()
        .enumerate()
        .filter(|(_, r)| r["kind"] == kind)
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn records_say_who_got_which_certificate_and_who_was_refused() {
    let g = golden();
    let recs = records(&g.a);
    assert_eq!(recs[0]["kind"], "start");
    assert_eq!(recs[0]["replica"], "r-a");
    assert_eq!(recs[0]["prev"], "0".repeat(64));
    let certify: Vec<_> = recs.iter().filter(|r| r["kind"] == "certify").collect();
    assert_eq!(certify.len(), 5, "three issued, two refused");

    let first = certify[0];
    let leaf = &g.issued_a[0].leaf;
    let (_, cert) = X509Certificate::from_der(leaf).unwrap();
    assert_eq!(first["code"], "OK");
    assert_eq!(first["identity"], linkerd_name("shop", "web"));
    assert!(first["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(first["caller"]["namespace"], "shop");
    assert_eq!(first["caller"]["service_account"], "web");
    assert_eq!(first["caller"]["method"], "jwt");
    assert_eq!(first["caller"]["pod_name"], "web-7d9f-x2");
    assert_eq!(first["caller"]["pod_uid"], "pod-uid-1");
    let serial = first["cert"]["serial"].as_str().unwrap();
    assert_eq!(serial.trim_start_matches('0'), g.issued_a[0].serial);
    assert_eq!(first["cert"]["sha256"], hex(&Sha256::digest(leaf)));
    assert_eq!(
        first["cert"]["spki_sha256"],
        hex(&Sha256::digest(cert.public_key().raw))
    );
    let issuer_der = &g.issued_a[0].issuer;
    let (_, issuer) = X509Certificate::from_der(issuer_der).unwrap();
    assert_eq!(first["cert"]["issuer_serial"], hex(issuer.raw_serial()));
    assert_eq!(
        first["cert"]["issuer_sha256"],
        hex(&Sha256::digest(issuer_der))
    );
    let not_after =
        humantime::parse_rfc3339_weak(first["cert"]["not_after"].as_str().unwrap()).unwrap();
    let secs = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((secs - cert.validity().not_after.timestamp()).abs() <= 1);
    assert_eq!(certify[1]["caller"].get("pod_name"), None);

    assert_eq!(certify[2]["code"], "PERMISSION_DENIED");
    assert_eq!(
        certify[2]["caller"]["service_account"], "web",
        "who was refused"
    );
    assert_eq!(certify[2].get("cert"), None);
    assert_eq!(certify[3]["code"], "UNAUTHENTICATED");
    assert_eq!(certify[3].get("caller"), None);
    // A cache hit says how the token was proven in the first place, and that it was reused.
    assert_eq!(certify[4]["caller"]["method"], "jwt");
    assert_eq!(certify[4]["caller"]["cached"], true);
    assert_eq!(first["caller"].get("cached"), None, "a fresh proof");

    let text = std::fs::read_to_string(&g.a).unwrap();
    assert!(
        !text.contains("not-a-jwt"),
        "a token reached the audit file"
    );
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "checkpoint");
    assert_eq!(last["last"], true, "shutdown writes a closing checkpoint");
    assert_eq!(last["alg"], "ed25519");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn cli_verifies_intact_files_and_their_signatures() {
    let g = golden();
    let (code, out) = verify(&[&g.a], Some(&g.key_a));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: "), "{out}");
    let checkpoints = lines_of_kind(&g.a, "checkpoint").len();
    assert!(
        out.contains(&format!("{checkpoints} signatures verified")),
        "{out}"
    );
    let (code, out) = verify(&[&g.b], Some(&g.key_b));
    assert_eq!(code, 0, "ECDSA-signed file: {out}");
    let (code, out) = verify(&[&g.a, &g.b], None);
    assert_eq!(code, 0, "two replicas' files side by side: {out}");
    assert!(out.contains("in 2 chain(s)"), "{out}");
    assert!(out.contains("signatures not checked"), "{out}");
}

#[test]
fn a_checkpoint_signed_with_another_key_is_reported() {
    let g = golden();
    let first = lines_of_kind(&g.a, "checkpoint")[0];
    let (code, out) = verify(&[&g.a], Some(&g.stranger));
    assert_eq!(code, 2, "{out}");
    let want = format!(
        "broken: {}:{first}: checkpoint signed with ed25519 key",
        g.a.display()
    );
    assert!(out.contains(&want), "{out}");
    let (code, out) = verify(&[&g.a], Some(&g.key_b));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not the given ecdsa-p256-sha256 key"), "{out}");
}

#[test]
fn a_forged_signature_on_the_closing_checkpoint_is_reported() {
    let g = golden();
    let mut lines = raw_lines(&g.a);
    let last = lines.len();
    let mut v: serde_json::Value = serde_json::from_str(&lines[last - 1]).unwrap();
    let sig = v["sig"].as_str().unwrap().to_owned();
    let forged = format!(
        "{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    v["sig"] = forged.into();
    lines[last - 1] = serde_json::to_string(&v).unwrap();
    let (_d, path) = tampered("audit.jsonl", &lines);
    let (code, out) = verify(&[&path], Some(&g.key_a));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:{last}: checkpoint signature", path.display())),
        "{out}"
    );
}

/// The attack v1 signatures allowed: drop `last` from the closing checkpoint and append a
/// record that links to it. A v2 signature covers `last`, so the checkpoint breaks.
#[test]
fn a_record_appended_after_an_unclosed_closing_checkpoint_is_a_break() {
    let g = golden();
    let mut lines = raw_lines(&g.a);
    let last = lines.len();
    assert!(
        lines[last - 1].contains("\"sig_v\":2"),
        "{}",
        lines[last - 1]
    );
    lines[last - 1] = lines[last - 1].replace(",\"last\":true", "");
    let closing: serde_json::Value = serde_json::from_str(&lines[last - 1]).unwrap();
    let certify = lines_of_kind(&g.a, "certify")[0];
    let mut forged: serde_json::Value = serde_json::from_str(&lines[certify - 1]).unwrap();
    forged["seq"] = (closing["seq"].as_u64().unwrap() + 1).into();
    forged["prev"] = hex(&Sha256::digest(lines[last - 1].as_bytes())).into();
    lines.push(serde_json::to_string(&forged).unwrap());
    let (_d, path) = tampered("audit.jsonl", &lines);
    let (code, out) = verify(&[&path], Some(&g.key_a));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "{}:{last}: checkpoint signature does not verify",
            path.display()
        )),
        "{out}"
    );
}

/// The second certify record's line number and the lines.
fn second_certify(g: &Golden) -> (usize, Vec<String>) {
    (lines_of_kind(&g.a, "certify")[1], raw_lines(&g.a))
}

#[test]
fn one_flipped_byte_is_located() {
    let (n, mut lines) = second_certify(golden());
    let at = lines[n - 1].find("\"identity\":\"").unwrap() + 12;
    let mut bytes = lines[n - 1].clone().into_bytes();
    bytes[at] ^= 0x01;
    lines[n - 1] = String::from_utf8(bytes).unwrap();
    let (_d, path) = tampered("audit.jsonl", &lines);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("broken: {}:{n}: record altered", path.display())),
        "{out}"
    );
}

#[test]
fn a_deleted_line_is_reported_as_missing_records() {
    let (n, mut lines) = second_certify(golden());
    let seq = records(&golden().a)[n - 1]["seq"].as_u64().unwrap();
    lines.remove(n - 1);
    let (_d, path) = tampered("audit.jsonl", &lines);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    let want = format!(
        "broken: {}:{n}: record seq {seq} missing after line {}",
        path.display(),
        n - 1
    );
    assert!(out.contains(&want), "{out}");
}

#[test]
fn two_swapped_lines_are_reported_as_out_of_order() {
    let (n, mut lines) = second_certify(golden());
    lines.swap(n - 1, n);
    let (_d, path) = tampered("audit.jsonl", &lines);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    let want = format!("broken: {}:{n}: out of order", path.display());
    assert!(out.contains(&want), "{out}");
    assert!(out.contains(&format!("is at line {}", n + 1)), "{out}");
}

#[test]
fn a_truncated_tail_is_reported() {
    let g = golden();
    let text = std::fs::read(&g.a).unwrap();
    let lines = raw_lines(&g.a).len();
    let cut = &text[..text.len() - 40];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, cut).unwrap();
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    let want = format!("broken: {}:{lines}: record cut short", path.display());
    assert!(out.contains(&want), "{out}");
}

#[test]
fn two_replicas_files_spliced_together_are_reported() {
    let g = golden();
    let (a, b) = (raw_lines(&g.a), raw_lines(&g.b));
    // A's head, then B's records from its second line on.
    let mut spliced: Vec<String> = a[..3].to_vec();
    spliced.extend_from_slice(&b[1..]);
    let (_d, path) = tampered("audit.jsonl", &spliced);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    let want = format!("broken: {}:4: record of chain", path.display());
    assert!(
        out.contains(&want) && out.contains("two chains spliced"),
        "{out}"
    );
    assert!(out.contains("(replica r-b) follows chain"), "{out}");
    // All of A, then all of B (B's start record does not link to A's last line).
    let mut whole = a.clone();
    whole.extend_from_slice(&b);
    let (_d2, path) = tampered("audit.jsonl", &whole);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 2, "{out}");
    let want = format!("broken: {}:{}: ", path.display(), a.len() + 1);
    assert!(out.contains(&want) && out.contains("spliced"), "{out}");
}

#[test]
fn rotation_continues_the_chain_across_files() {
    let g = golden();
    assert!(
        g.rotated.len() >= 3,
        "15 records in 4 KiB files: {:?}",
        g.rotated
    );
    for f in &g.rotated {
        assert!(
            std::fs::metadata(f).unwrap().len() <= 4096,
            "{f:?} passed max_size"
        );
    }
    // Each file's first line links to the previous file's last line.
    for pair in g.rotated.windows(2) {
        let last = raw_lines(&pair[0]).pop().unwrap();
        let next = records(&pair[1]);
        assert_eq!(next[0]["prev"], hex(&Sha256::digest(last.as_bytes())));
    }
    // Given in any order (the shell's glob order puts the current file first).
    let mut all: Vec<&Path> = g.rotated.iter().map(PathBuf::as_path).collect();
    all.rotate_right(1);
    let (code, out) = verify(&all, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in 1 chain(s)"), "{out}");
    // A middle file left out: the gap is found where the next file begins.
    let missing: Vec<&Path> = [&g.rotated[0], &g.rotated[2]]
        .map(PathBuf::as_path)
        .to_vec();
    let (code, out) = verify(&missing, None);
    assert_eq!(code, 2, "{out}");
    let want = format!("broken: {}:1: records seq", g.rotated[2].display());
    assert!(
        out.contains(&want) && out.contains("missing after the end of the previous file"),
        "{out}"
    );
    // The current file alone: intact, with a note that earlier records were not given.
    let (code, out) = verify(&[g.rotated.last().unwrap()], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("earlier records were not given"), "{out}");
}

#[test]
fn find_answers_by_serial_identity_and_time() {
    let g = golden();
    let serial = g.issued_a[1].serial.to_uppercase();
    let (code, out) = cli(&[
        "audit",
        "find",
        "--serial",
        &serial,
        "--json",
        path_str(&g.a),
    ]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["caller"]["service_account"], "api");

    let (code, out) = cli(&["audit", "find", "--identity", "shop/web", path_str(&g.a)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 record(s)"),
        "two issued and one refused for shop/web: {out}"
    );
    assert!(
        out.contains("PERMISSION_DENIED") && out.contains("web-7d9f-x2"),
        "{out}"
    );

    let (code, out) = cli(&[
        "audit",
        "find",
        "--since",
        "1h",
        path_str(&g.a),
        path_str(&g.b),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 record(s)"), "{out}");
    let (code, out) = cli(&[
        "audit",
        "find",
        "--since",
        "2099-01-01T00:00:00Z",
        path_str(&g.a),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 record(s)"), "{out}");
    let (code, out) = cli(&["audit", "find", "--since", "yesterday-ish", path_str(&g.a)]);
    assert_eq!(code, 2);
    assert_eq!(out.trim().lines().count(), 1, "one-line error: {out}");
    let _ = &g.dir;
}

#[tokio::test]
async fn a_restarted_replica_continues_its_file_with_a_linked_chain() {
    install_crypto();
    let files = ca_files();
    let path = files.dir.path().join("audit.jsonl");
    for _ in 0..2 {
        let config = audit_config(&files, &path, "r-0", OnFailure::Refuse);
        let server = Server::start(config).await.unwrap();
        files.certify_web(server.grpc_addr).await.unwrap();
        server.shutdown().await.unwrap();
    }
    let recs = records(&path);
    let lines = raw_lines(&path);
    let second = recs.iter().rposition(|r| r["kind"] == "start").unwrap();
    assert!(second > 0, "one file, two chains");
    assert_eq!(
        recs[second]["prev"],
        hex(&Sha256::digest(lines[second - 1].as_bytes()))
    );
    assert_eq!(recs[second]["after"], recs[0]["chain"]);
    assert_ne!(recs[second]["chain"], recs[0]["chain"]);
    let (code, out) = verify(&[&path], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in 2 chain(s)"), "{out}");
}
