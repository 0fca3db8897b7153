//! File-change notifications as a tokio channel. Directories are watched (not files) so
//! that replaced files and kubelet's `..data` symlink swaps are seen.

use std::path::PathBuf;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the OS watch alive; drop it to stop watching.
pub struct DirWatch {
    _watcher: RecommendedWatcher,
}

/// Watches `dirs` (non-recursively); every change sends a unit on the returned channel.
/// Bursts coalesce because the channel holds a single pending notification.
pub fn watch_dirs(dirs: &[PathBuf]) -> notify::Result<(DirWatch, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.try_send(());
        }
    })?;
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok((DirWatch { _watcher: watcher }, rx))
}
