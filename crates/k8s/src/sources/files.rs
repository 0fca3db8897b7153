//! Issuer and anchors from files (a mounted Secret/ConfigMap or plain files): reloaded on
//! change notifications and re-read periodically, so a missed event never pins an old issuer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Reloader;
use super::watch::watch_dirs;
use crate::metrics::Source;
use certmint_core::ca::IssuerMaterial;
use certmint_core::fsutil::read_bounded;

const SOURCE: Source = Source::Files;
/// Certificates, keys and bundles larger than this are refused.
pub const MAX_PEM_BYTES: u64 = 1 << 20;
/// Lets a writer finish a multi-file update before it is read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Where the files are (either may be absent when that half comes from Kubernetes) and
/// how often to re-read them.
#[derive(Clone, Debug)]
pub struct FileSources {
    pub issuer_dir: Option<PathBuf>,
    pub anchors_file: Option<PathBuf>,
    pub interval: Duration,
}

impl FileSources {
    /// Reads both once, applying what is valid.
    pub fn load_once(&self, reloader: &Reloader) {
        if let Some(file) = &self.anchors_file {
            match read_bounded(file, MAX_PEM_BYTES) {
                Ok(pem) => reloader.anchors_read(SOURCE, &pem),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    reloader.anchors_missing(SOURCE, &format!("{}: {e}", file.display()))
                }
                Err(e) => reloader.anchors_invalid(SOURCE, &format!("{}: {e}", file.display())),
            }
        }
        if let Some(dir) = &self.issuer_dir {
            match read_issuer_dir(dir) {
                Ok(m) => reloader.issuer_read(SOURCE, m),
                Err(e) => reloader.issuer_missing(SOURCE, &e),
            }
        }
    }

    /// Watches and re-reads until `shutdown` flips to true.
    pub async fn run(self, reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) {
        let anchors_dir = self.anchors_file.as_deref().map(|f| {
            f.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        });
        let dirs: Vec<PathBuf> = self.issuer_dir.iter().cloned().chain(anchors_dir).collect();
        let (_guard, mut events) = match watch_dirs(&dirs) {
            Ok((g, rx)) => (Some(g), rx),
            Err(e) => {
                tracing::warn!(error = %e, "file notifications unavailable; relying on periodic re-reads");
                (None, tokio::sync::mpsc::channel(1).1)
            }
        };
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
                Some(()) = events.recv() => tokio::time::sleep(DEBOUNCE).await,
            }
            self.load_once(&reloader);
        }
    }
}

/// Reads `tls.crt`/`tls.key` (kubernetes.io/tls) or `crt.pem`/`key.pem` (linkerd.io/tls).
pub fn read_issuer_dir(dir: &Path) -> Result<IssuerMaterial, String> {
    for (crt, key) in [("tls.crt", "tls.key"), ("crt.pem", "key.pem")] {
        let (crt, key) = (dir.join(crt), dir.join(key));
        if crt.exists() || key.exists() {
            let read = |p: &Path| {
                read_bounded(p, MAX_PEM_BYTES).map_err(|e| format!("{}: {e}", p.display()))
            };
            return Ok(IssuerMaterial {
                cert_pem: read(&crt)?,
                key_pem: read(&key)?,
            });
        }
    }
    Err(format!(
        "{} has neither tls.crt/tls.key nor crt.pem/key.pem",
        dir.display()
    ))
}
