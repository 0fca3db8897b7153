//! The CA ceremony with keys that exist only in a token (issue 22), as a user runs it:
//! `ca root --key pkcs11:…`, `ca issuer --ca-key pkcs11:… --key pkcs11:…`, then `check`
//! and `inspect` on the result; a refused PIN and a missing module say what to do.

use certmint_testsupport as common;

use std::path::Path;
use std::process::Command;

use common::softhsm::{key_uri, softhsm};

fn run(dir: &Path, args: &[&str], hsm: Option<(&Path, &Path)>) -> (i32, String) {
    let mut c = Command::new(common::certmint_bin());
    c.current_dir(dir).args(args);
    c.env_remove("CERTMINT_PKCS11_MODULE")
        .env_remove("CERTMINT_PKCS11_PIN_FILE");
    if let Some((module, pin)) = hsm {
        c.env("CERTMINT_PKCS11_MODULE", module)
            .env("CERTMINT_PKCS11_PIN_FILE", pin);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_root_and_an_issuer_whose_keys_never_leave_the_token() {
    let Some(soft) = softhsm() else { return };
    let token = soft.token("ceremony");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hsm = Some((soft.module.as_path(), soft.pin_file.as_path()));
    let root_uri = key_uri(&token, "root-2026");
    let issuer_uri = key_uri(&token, "issuer-2026");

    let (code, out) = run(
        d,
        &["ca", "root", "--cert", "root.crt", "--key", &root_uri],
        hsm,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in the token"), "{out}");
    let args = [
        "ca",
        "issuer",
        "--ca-cert",
        "root.crt",
        "--ca-key",
        &root_uri,
        "--cert",
        "issuer/tls.crt",
        "--key",
        &issuer_uri,
    ];
    let (code, out) = run(d, &args, hsm);
    assert_eq!(code, 0, "{out}");
    // No key material in any file: the directory holds certificates only.
    let names: Vec<_> = walk(d);
    assert_eq!(names, ["issuer/tls.crt", "root.crt"], "{names:?}");
    for f in &names {
        let text = std::fs::read_to_string(d.join(f)).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{f}");
    }
    // The issuer Secret's key entry is the URI; check and inspect read it.
    std::fs::write(d.join("issuer/tls.key"), format!("{issuer_uri}\n")).unwrap();
    let args = [
        "check",
        "--trust-anchors",
        "root.crt",
        "--issuer-dir",
        "issuer",
    ];
    let (code, out) = run(d, &args, hsm);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in an HSM (pkcs11:token="), "{out}");
    let (code, out) = run(
        d,
        &["inspect", "issuer/tls.crt", "--key", "issuer/tls.key"],
        hsm,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("matches certificate 1"), "{out}");
    let (code, out) = run(d, &["inspect", "issuer/tls.crt", "--key", &root_uri], hsm);
    assert_eq!(code, 1, "{out}");

    // A generated key is never overwritten by a second ceremony with the same name.
    let (code, out) = run(
        d,
        &["ca", "root", "--cert", "r2.crt", "--key", &root_uri],
        hsm,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("already holds a key"), "{out}");

    // A refused PIN and a missing module: one line each, saying what to do.
    let bad = d.join("bad-pin");
    std::fs::write(&bad, "0000").unwrap();
    let args = [
        "ca",
        "issuer",
        "--ca-cert",
        "root.crt",
        "--ca-key",
        &root_uri,
        "--cert",
        "i2.crt",
        "--key",
        "i2.key",
    ];
    let (code, out) = run(d, &args, Some((soft.module.as_path(), bad.as_path())));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("refused the PIN"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let (code, out) = run(d, &args, None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--pkcs11-module"), "{out}");
    assert!(!d.join("i2.key").exists());
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            for sub in walk(&p) {
                out.push(format!(
                    "{}/{sub}",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
        } else {
            out.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}
