//! Shared by the audit test binaries: servers with an audit file, keys, the CLI.

pub mod golden;

use std::path::{Path, PathBuf};
use std::process::Command;

use certmint::config::Config;
use certmint_audit::OnFailure;
use certmint_audit::config::FileSinkConfig;
use serde_json::{Value, json};

use crate::pki::Ca;
use crate::{AUDIENCE, CaFiles, TOKEN_ISSUER};

/// A CA layout with a loaded issuer, ready to serve.
pub fn ca_files() -> CaFiles {
    let files = CaFiles::new();
    let root = Ca::root("root");
    let issuer = root.issuer("issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    files
}

/// `files.config()` with an audit file at `path`.
pub fn audit_config(files: &CaFiles, path: &Path, replica: &str, policy: OnFailure) -> Config {
    let mut c = files.config();
    c.audit.enabled = true;
    c.audit.replica = Some(replica.into());
    c.audit.on_failure = policy;
    c.audit.file = Some(FileSinkConfig {
        path: path.into(),
        max_size: 1 << 20,
        keep: 5,
    });
    c
}

/// A private key file and its public key file (PKCS#8 / SPKI PEM).
pub fn key_files(dir: &Path, name: &str, ed25519: bool) -> (PathBuf, PathBuf) {
    let key = match ed25519 {
        true => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        false => rcgen::KeyPair::generate().unwrap(),
    };
    let (private, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    (private, public)
}

/// A projected token that names its pod.
pub fn token_with_pod(files: &CaFiles, ns: &str, sa: &str, pod: &str, uid: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    files.token_key.sign(&json!({
        "iss": TOKEN_ISSUER, "sub": format!("system:serviceaccount:{ns}:{sa}"), "aud": [AUDIENCE],
        "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "u-1"},
                          "pod": {"name": pod, "uid": uid}}
    }))
}

/// Runs the certmint binary; returns the exit code and stdout + stderr.
pub fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(crate::certmint_bin())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The lines of an audit file, parsed.
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Raw lines (without newlines).
pub fn raw_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
