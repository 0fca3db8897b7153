//! SoftHSM2 for tests: one token directory under `target/softhsm` (named by
//! `SOFTHSM2_CONF`, which `.cargo/config.toml` sets for test processes), tokens with
//! labels unique to this process, a PIN file each. A test process initialises the PKCS#11
//! module once, so it makes every token it needs before its first use of the module.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Where Debian's `libsofthsm2` puts the module.
const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

pub const PIN: &str = "4321";
pub const SO_PIN: &str = "87654321";

/// The SoftHSM installation and this process's token directory.
pub struct SoftHsm {
    pub module: PathBuf,
    pub conf: PathBuf,
    pub tokens: PathBuf,
    pub pin_file: PathBuf,
}

/// SoftHSM, or `None` (with a note) where it is not installed. Under CI (`CI` set) a
/// missing SoftHSM fails the test: `.ci/run` installs it.
pub fn softhsm() -> Option<&'static SoftHsm> {
    static HSM: OnceLock<Option<SoftHsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let module = MODULES.iter().map(PathBuf::from).find(|p| p.exists());
        let tool = Command::new("softhsm2-util").arg("--version").output().is_ok();
        let Some(module) = module.filter(|_| tool) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "SoftHSM2 is not installed (apt-get install softhsm2 opensc)"
            );
            eprintln!("skipped: SoftHSM2 is not installed (apt-get install softhsm2)");
            return None;
        };
        let conf = PathBuf::from(
            std::env::var_os("SOFTHSM2_CONF").expect("SOFTHSM2_CONF (set by .cargo/config.toml)"),
        );
        let base = conf.parent().expect("conf has a directory").to_owned();
        let tokens = base.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        // Every test process writes the same text: replace atomically.
        let tmp = base.join(format!("softhsm2.conf.{}", std::process::id()));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &conf).unwrap();
        let pin_file = base.join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Some(SoftHsm {
            module,
            conf,
            tokens,
            pin_file,
        })
    })
    .as_ref()
}

impl SoftHsm {
    /// Initialises a new token labelled `{name}-{pid}` and returns the label.
    pub fn token(&self, name: &str) -> String {
        let label = format!("{name}-{}", std::process::id());
        let out = self
            .util()
            .args(["--init-token", "--free", "--label", &label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        label
    }

    /// The directory holding the token labelled `label` (SoftHSM names it by a UUID; the
    /// label is stored in its `token.object`).
    pub fn token_dir(&self, label: &str) -> PathBuf {
        let padded = format!("{label:<32}");
        for entry in std::fs::read_dir(&self.tokens).unwrap() {
            let dir = entry.unwrap().path();
            let object = std::fs::read(dir.join("token.object")).unwrap_or_default();
            if object.windows(padded.len()).any(|w| w == padded.as_bytes()) {
                return dir;
            }
        }
        panic!("no token directory for {label}");
    }

    /// `pkcs11-tool` against this module (OpenSC), for looking at keys from outside.
    pub fn pkcs11_tool(&self) -> Command {
        let mut c = Command::new("pkcs11-tool");
        c.env("SOFTHSM2_CONF", &self.conf)
            .arg("--module")
            .arg(&self.module);
        c
    }

    fn util(&self) -> Command {
        let mut c = Command::new("softhsm2-util");
        c.env("SOFTHSM2_CONF", &self.conf);
        c
    }

    /// The `hsm:` YAML section for this module and PIN file.
    pub fn yaml(&self) -> String {
        format!(
            "hsm:\n  module: {}\n  pin_file: {}\n",
            self.module.display(),
            self.pin_file.display()
        )
    }
}

/// A key URI for `object` in `token`.
pub fn key_uri(token: &str, object: &str) -> String {
    format!("pkcs11:token={token};object={object}")
}

/// An issuer certificate for `key` (in a token) signed by `root`; its key file text is the
/// key's URI.
pub fn issuer_for(
    root: &crate::pki::Ca,
    key: std::sync::Arc<dyn certmint_core::ca::ExternalKey>,
) -> certmint_core::ca::create::CaMaterial {
    use certmint_core::ca::CaKey;
    use std::time::{Duration, SystemTime};
    let root_key = certmint_core::ca::keys::key_pair_from_pem(root.key_pem.as_bytes()).unwrap();
    certmint_core::ca::create::new_issuer_with(
        &root.cert_pem,
        CaKey::Local(root_key),
        "hsm issuer",
        Duration::from_secs(365 * 86400),
        0,
        CaKey::External(key),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap()
}

/// The `hsm:` settings for this module with the PIN in `pin_file`.
pub fn config(soft: &SoftHsm, pin_file: &std::path::Path) -> certmint_hsm::HsmConfig {
    certmint_hsm::HsmConfig {
        module: soft.module.clone(),
        pin_file: pin_file.to_owned(),
        sessions: 8,
    }
}
