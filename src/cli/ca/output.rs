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
    /// Private key file to write (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub key: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

impl OutputFiles {
    /// Refuses to clobber, before any key is generated or input read.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if same_file(&self.cert, &self.key) {
            bail!("--cert and --key name the same file; give two different paths");
        }
        for (flag, path) in [("--cert", &self.cert), ("--key", &self.key)] {
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
        for path in [&self.cert, &self.key] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
        }
        if self.force {
            remove_if_present(&self.key)?;
        }
        write_private(&self.key, key_pem.as_bytes())
            .with_context(|| format!("cannot write --key {}", self.key.display()))?;
        std::fs::write(&self.cert, cert_pem)
            .with_context(|| format!("cannot write --cert {}", self.cert.display()))
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
