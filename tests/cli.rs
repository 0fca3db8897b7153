//! The command line as a user meets it: bad configuration fails at start-up with one line
//! naming the setting; `--version` names the build.

use std::process::Command;

fn certmint(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_configuration_fails_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("issuance:\n  lifetime: 10s\n", "issuance.lifetime"),
        ("listn: 127.0.0.1:1\n", "listn"),
        ("authn:\n  mode: jwt\n", "authn.jwt.keys"),
        ("issuance:\n  lifetime: soon\n", "lifetime"),
        ("trust_domain: Not_A_Domain\n", "trust_domain"),
    ];
    for (yaml, setting) in cases {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = certmint(&["serve", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{yaml}: expected one line, got {stderr}"
        );
        assert!(stderr.contains(setting), "{yaml}: {stderr}");
    }
    let out = certmint(&["serve", "--config", "/nonexistent/certmint.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/certmint.yaml"));
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "trust_domain: example.org\n").unwrap();
    // An invalid value from the environment must win over the file's valid one...
    let out = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("CERTMINT_TRUST_DOMAIN", "Bad_Env")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("trust_domain"));
    // ...and a flag wins over the environment (then the bad lifetime is what fails).
    std::fs::write(&path, "issuance:\n  lifetime: 10s\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args([
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--trust-domain",
            "cluster.local",
        ])
        .env("CERTMINT_TRUST_DOMAIN", "Bad_Env")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("issuance.lifetime"));
}

#[test]
fn version_names_the_commit() {
    let out = certmint(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("certmint {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn rotation_plan_prints_the_steps_in_order_for_the_given_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = certmint_testsupport::pki::Ca::root("root 2035");
    let path = dir.path().join("new-root.crt");
    std::fs::write(&path, &root.cert_pem).unwrap();
    let new = path.to_str().unwrap();
    let out = certmint(&[
        "rotation",
        "plan",
        "--new-anchor",
        new,
        "--namespace",
        "mesh-ca",
        "--secret",
        "issuer-x",
        "--configmap",
        "anchors-x",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("CN=root 2035"), "{text}");
    // The steps in their order: overlap bundle, workloads, issuer, wait, removal.
    let order = [
        "certmint ca bundle current.pem",
        "create configmap anchors-x --from-file=ca-bundle.crt=overlap.pem",
        "linkerd upgrade --identity-trust-anchors-file=overlap.pem",
        "create secret tls issuer-x",
        "live until T",
        &format!("create configmap anchors-x --from-file=ca-bundle.crt={new}"),
        &format!("linkerd upgrade --identity-trust-anchors-file={new}"),
    ];
    let mut at = 0;
    for step in order {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{text}"));
        at += found + step.len();
    }
    assert!(
        !text.contains("-n certmint "),
        "every command uses --namespace: {text}"
    );

    // Not a certificate: one line saying so and what to pass.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = certmint(&["rotation", "plan", "--new-anchor", junk.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("certmint ca root"), "{stderr}");
}
