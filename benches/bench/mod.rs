//! The harness: runs the selected sections in order and collects one report.

pub mod args;
mod e2e;
mod floor;
mod herd;
mod pipeline;
pub mod profile;
pub mod report;
mod signers;
mod startup;

use certmint_testsupport::bench::{fixtures, load, machine, server};
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

    // Shown as context next to pipeline and e2e, which take their own floor next to each
    // measurement for their ratios.
    if opts.needs_floor() {
        section(&mut report, opts, "floor", |_| {
            ((), floor::run(opts), Vec::new())
        });
    }
    if opts.runs(Section::Pipeline) {
        section(&mut report, opts, "pipeline", |_| {
            let (rows, targets) = pipeline::run(opts, &pki, &csrs);
            ((), rows, targets)
        });
    }
    if opts.runs(Section::E2e) {
        section(&mut report, opts, "e2e", |_| {
            let (rows, targets) = e2e::run(opts, &pki, &csrs);
            ((), rows, targets)
        });
    }
    if opts.runs(Section::Herd) {
        section(&mut report, opts, "herd", |_| {
            let (rows, targets) = herd::run(opts, &pki, &csrs);
            ((), rows, targets)
        });
    }
    if opts.runs(Section::Startup) {
        section(&mut report, opts, "startup", |_| {
            let (rows, targets) = startup::run(opts, &csrs, &workdir);
            ((), rows, targets)
        });
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

/// Runs one section: waits for a quiet machine if asked, records how much CPU other
/// processes used meanwhile, and collects its rows and targets.
fn section<T>(
    report: &mut Report,
    opts: &Options,
    name: &'static str,
    f: impl FnOnce(&Options) -> (T, Vec<report::Row>, Vec<report::Target>),
) -> T {
    let quiet = match opts.wait_quiet.is_zero() {
        true => true,
        false => {
            progress(&format!("{name}: waiting for a quiet machine"));
            machine::wait_quiet(opts.wait_quiet)
        }
    };
    progress(name);
    let noise = machine::Noise::start();
    let (out, rows, targets) = f(opts);
    report.noise.push((name, noise.cores(), quiet));
    report.rows.extend(rows);
    report.targets.extend(targets);
    out
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
