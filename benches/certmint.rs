//! certmint's benchmark harness (issue 6): the crypto floor, the in-process pipeline, a
//! running server end to end (plaintext and TLS), a thundering herd against the fake API
//! server, and the release binary's start-up time and memory.
//!
//! `cargo bench --bench certmint [-- --json] [--quick] [--herd N] [--issuances N]
//! [--only SECTION[,SECTION]]`. See README.md "Performance" for results and how long a run
//! takes. Numbers are reported, never asserted: targets show PASS/FAIL next to the values.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

mod bench;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::install_crypto();
    let opts = match bench::args::Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}\n\n{}", bench::args::USAGE);
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{}", bench::args::USAGE);
        return ExitCode::SUCCESS;
    }
    if let Some(case) = &opts.profile {
        return match bench::profile::run(&opts, case) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(2)
            }
        };
    }
    let report = bench::run(&opts);
    if opts.json {
        println!("{}", report.to_json());
    } else {
        report.print_table();
    }
    ExitCode::SUCCESS
}
