//! The certificate and key files `ca root` and `ca issuer` write.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use certmint_core::fsutil::write_private;

/// Where to write; existing files are kept unless `--force`.
#[derive(Debug, Args)]
pub(super) struct OutputFiles {
    /// Certificate file to write (PEM; for an issuer, its chain).
    #[arg(long)]
    pub cert: PathBuf,
    /// Private key file to write (PKCS#8 PEM, mode 0600), or a PKCS#11 URI
    /// (`pkcs11:token=LABEL;object=NAME`): the key is then generated inside that token
    /// (sensitive, not extractable) and no key file is written.
    #[arg(long)]
    pub key: String,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

impl OutputFiles {
    /// Refuses to clobber, before any key is generated or input read.
    pub fn prepare(&self) -> anyhow::Result<()> {
        let key = self.key_file();
        if key.is_some_and(|k| same_file(&self.cert, k)) {
            bail!("--cert and --key name the same file; give two different paths");
        }
        let files = [("--cert", Some(self.cert.as_path())), ("--key", key)];
        for (flag, path) in files.iter().filter_map(|(f, p)| Some((*f, (*p)?))) {
            if !self.force && path.symlink_metadata().is_ok() {
                bail!(
                    "{flag} {} already exists; pass --force to replace it, or choose another path",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Writes the key (0600, even when it replaces a more open file), then the certificate.
    /// Missing parent directories are created.
    pub fn write(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let key = self.key_file();
        for path in [Some(self.cert.as_path()), key].into_iter().flatten() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
        }
        if let Some(key) = key {
            if self.force {
                remove_if_present(key)?;
            }
            write_private(key, key_pem.as_bytes())
                .with_context(|| format!("cannot write --key {}", key.display()))?;
        }
        std::fs::write(&self.cert, cert_pem)
            .with_context(|| format!("cannot write --cert {}", self.cert.display()))
    }
}

impl OutputFiles {
    /// The key's PKCS#11 URI when `--key` names one.
    pub fn key_uri(&self) -> Option<&str> {
        certmint_core::ca::signing_key::external_reference(self.key.as_bytes())
    }

    /// The key file to write, unless the key lives in a token.
    pub fn key_file(&self) -> Option<&Path> {
        match self.key_uri() {
            Some(_) => None,
            None => Some(Path::new(&self.key)),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot replace {}", path.display()))
        }
        _ => Ok(()),
    }
}
