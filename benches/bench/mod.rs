//! The harness: runs the selected sections in order and collects one report.

pub mod args;
mod e2e;
mod fixtures;
mod floor;
mod herd;
mod load;
mod machine;
mod pipeline;
pub mod profile;
pub mod report;
mod server;
mod startup;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use args::{Options, Section};
use report::Report;

/// Runs every selected section; progress goes to stderr.
pub fn run(opts: &Options) -> Report {
    let started = Instant::now();
    let workdir = workdir();
    let log_file = workdir.join("server.log");
    init_logging(&log_file);
    let mut report = Report {
        command: opts.command.clone(),
        machine_before: Some(machine::Machine::now()),
        log_file: log_file.display().to_string(),
        ..Report::default()
    };

    let pki = fixtures::Pki::new();
    let pool = if opts.quick { 3_200 } else { 32_000 };
    progress(&format!("making {pool} CSRs with distinct P-256 keys"));
    let csrs = fixtures::csr_pool(&fixtures::identity(), pool);

    let floor = opts.needs_floor().then(|| {
        progress("floor: ECDSA P-256 sign/verify");
        let (floor, rows) = floor::run(opts);
        report.rows.extend(rows);
        floor
    });
    if let (true, Some(f)) = (opts.runs(Section::Pipeline), floor) {
        progress("pipeline: in process, one core");
        let (rows, targets) = pipeline::run(opts, &pki, &csrs, f);
        report.rows.extend(rows);
        report.targets.extend(targets);
    }
    if let (true, Some(f)) = (opts.runs(Section::E2e), floor) {
        progress("end-to-end: plaintext and TLS, c1 and c64");
        let (rows, targets) = e2e::run(opts, &pki, &csrs, f);
        report.rows.extend(rows);
        report.targets.extend(targets);
    }
    if opts.runs(Section::Herd) {
        progress(&format!("herd: {} distinct tokens", opts.herd));
        let (rows, targets) = herd::run(opts, &pki, &csrs);
        report.rows.extend(rows);
        report.targets.extend(targets);
    }
    if opts.runs(Section::Startup) {
        progress(&format!(
            "start-up and RSS: release binary, {} issuances",
            opts.issuances
        ));
        let (rows, targets) = startup::run(opts, &csrs, &workdir);
        report.rows.extend(rows);
        report.targets.extend(targets);
    }
    report.machine_after = Some(machine::Machine::now());
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}

/// Scratch space under `target/tmp` for logs and the start-up section's files.
fn workdir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("certmint-bench");
    std::fs::create_dir_all(&dir).expect("bench work directory");
    dir
}

fn progress(what: &str) {
    eprintln!("certmint bench: {what}");
}

/// The in-process server logs as `certmint serve` does (plain text, `RUST_LOG`, default
/// `info`), into a file so the table stays readable; formatting costs stay in the numbers.
fn init_logging(path: &Path) {
    let Ok(file) = std::fs::File::create(path) else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Arc::new(file))
        .try_init();
}
