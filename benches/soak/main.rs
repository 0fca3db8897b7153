//! The soak run (issue 10 §6): the release binary `certmint serve` against the fake
//! Kubernetes API server for a chosen duration, at about half the capacity measured at
//! start, with the issuer rotated every minute and a TokenReview fault every few minutes.
//! Prints RSS, descriptors, tokio tasks, throughput and errors over time, then PASS/FAIL.
//!
//! `cargo bench --bench soak -- [--duration 1h] [--rate N] [--interval 30s]`; see
//! `--help` and README.md "Soak".

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

// The parts of the benchmark harness the soak reuses: the load client, the CSR pool, the
// process probes, the fake API server's thread.
use certmint_testsupport::bench::{fixtures, load, machine, server as kube_thread};

mod args;
mod chaos;
mod fds;
mod run;
mod sample;
mod server;
mod tally;
mod traffic;
mod verdict;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::install_crypto();
    let opts = match args::Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    match run::run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("soak could not run: {msg}");
            ExitCode::from(2)
        }
    }
}
