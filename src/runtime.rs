//! The Tokio runtime certmint serves on: one worker per available core, so that signing
//! work, which is CPU-bound, can use every core the pod is given. The benchmark builds its
//! in-process server on the same runtime.

use std::io;

/// A multi-threaded runtime with one worker per available core.
pub fn build() -> io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("certmint")
        .enable_all()
        .build()
}
