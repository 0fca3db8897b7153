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
