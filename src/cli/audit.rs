//! `certmint audit verify` and `certmint audit find`: offline checks of audit files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use certmint_audit::checkpoint::AuditVerifier;
use certmint_audit::find::{Query, find};
use certmint_audit::load::read_all;
use certmint_audit::verify::verify;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check chains and checkpoint signatures. Exit 0 intact, 2 broken (first break shown
    /// with file and line).
    Verify(VerifyArgs),
    /// Show the Certify records matching an identity, a serial and/or a time.
    Find(FindArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// PEM public key (ECDSA P-256 or Ed25519) that checkpoints must be signed with.
    #[arg(long, value_name = "PUB.pem")]
    key: Option<PathBuf>,
    /// Audit files of one or more replicas, rotated ones included (any order).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct FindArgs {
    /// A Linkerd identity, or NAMESPACE/SERVICE_ACCOUNT of the authenticated caller.
    #[arg(long, required_unless_present_any = ["serial", "since"])]
    identity: Option<String>,
    /// Certificate serial in hex (colons and case do not matter).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// RFC 3339 time (2026-11-30T03:00:00Z) or an age (90m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Print the matching records as JSON lines, exactly as written.
    #[arg(long)]
    json: bool,
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify(a) => run_verify(a),
        AuditCommand::Find(a) => run_find(a),
    }
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match &args.key {
        Some(p) => Some(AuditVerifier::from_file(p)?),
        None => None,
    };
    let files = read_all(&args.files)?;
    let report = verify(&files, key.as_ref());
    let mut out = std::io::stdout().lock();
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    for gap in &report.gaps {
        writeln!(out, "gap: {gap}")?;
    }
    if let Some(b) = &report.broken {
        writeln!(out, "broken: {b}")?;
        return Ok(ExitCode::from(2));
    }
    let signatures = match (&key, report.signatures_unchecked) {
        (Some(_), _) => format!("{} signatures verified", report.signatures_verified),
        (None, 0) => "no key given".to_owned(),
        (None, n) => format!("{n} signatures not checked: pass --key"),
    };
    let gaps = match report.gaps.len() {
        0 => String::new(),
        n => format!("; {n} recorded gap(s), see above"),
    };
    writeln!(
        out,
        "intact: {} records in {} chain(s), {} file(s); {} checkpoints, {signatures}{gaps}",
        report.records,
        report.chains,
        files.len(),
        report.checkpoints
    )?;
    Ok(ExitCode::SUCCESS)
}

fn parse_since(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let age: Duration = humantime::parse_duration(s)
        .with_context(|| format!("--since {s:?}: write an RFC 3339 time or an age such as 2h"))?;
    Ok(SystemTime::now() - age)
}

fn run_find(args: FindArgs) -> anyhow::Result<ExitCode> {
    let query = Query {
        identity: args.identity,
        serial: args.serial,
        since: args.since.as_deref().map(parse_since).transpose()?,
    };
    if query.identity.is_none() && query.serial.is_none() && query.since.is_none() {
        bail!("give --identity, --serial or --since");
    }
    let files = read_all(&args.files)?;
    let found = find(&files, &query);
    let mut out = std::io::stdout().lock();
    if args.json {
        for f in &found {
            out.write_all(f.line)?;
            out.write_all(b"\n")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24} {:<20} {:<17} {:<14} {:<34} {:<28} IDENTITY / REASON",
        "TIME", "REPLICA", "CODE", "METHOD", "SERIAL", "CALLER (POD)"
    )?;
    for f in &found {
        let c = f.certify;
        let caller = c.caller.as_ref();
        let who = caller.map_or("-".to_owned(), |a| match &a.pod_name {
            Some(pod) => format!("{}/{} ({pod})", a.namespace, a.service_account),
            None => format!("{}/{}", a.namespace, a.service_account),
        });
        let method = caller.map_or("-".to_owned(), |a| match a.cached {
            true => format!("{} (cached)", a.method),
            false => a.method.clone(),
        });
        let serial = c.cert.as_ref().map_or("-", |x| x.serial.as_str());
        let tail = match (c.code.as_str(), &c.undelivered) {
            ("OK", None) => c.identity.clone(),
            ("OK", Some(code)) => format!("{} / not delivered: caller got {code}", c.identity),
            _ => format!("{} / {}", c.identity, c.reason),
        };
        writeln!(
            out,
            "{:<24} {:<20} {:<17} {:<14} {:<34} {:<28} {tail}",
            f.record.time, f.record.replica, c.code, method, serial, who
        )?;
    }
    writeln!(out, "{} record(s)", found.len())?;
    Ok(ExitCode::SUCCESS)
}
