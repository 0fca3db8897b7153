//! A process's open descriptors, and how many of them are TCP connections to one port
//! (the Kubernetes client's pool to the API server: one HTTP/1.1 connection per concurrent
//! request, kept idle for a while, so it follows TokenReview concurrency, not leaks).

use std::collections::HashSet;

/// (all descriptors, TCP connections to `peer_port`) of `pid`.
pub fn count(pid: u32, peer_port: u16) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let mut total = 0;
    let mut sockets = HashSet::new();
    for entry in dir.flatten() {
        total += 1;
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
        {
            sockets.insert(inode.to_owned());
        }
    }
    let port = format!(":{peer_port:04X}");
    let mut to_peer = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[2].ends_with(&port) && sockets.contains(f[9]) {
                to_peer += 1;
            }
        }
    }
    (total, to_peer)
}
