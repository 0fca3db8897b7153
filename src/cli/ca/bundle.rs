//! `certmint ca bundle OLD.pem NEW.pem ...`: the anchor bundle for a rotation overlap.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;

use super::read_text;
use crate::cli::describe::CertView;
use certmint_core::ca::TrustAnchors;
use certmint_core::ca::cert::to_pem;
use certmint_core::ca::cert::{CertInfo, parse_pem_chain};
use certmint_core::ca::fmt_time;

#[derive(Debug, Args)]
pub(super) struct BundleArgs {
    /// PEM files with one or more trust anchors each; the bundle goes to stdout.
    #[arg(required = true, value_name = "PEM")]
    files: Vec<PathBuf>,
}

pub(super) fn run(args: BundleArgs, now: SystemTime) -> anyhow::Result<ExitCode> {
    let (mut anchors, duplicates) = collect(&args.files, now)?;
    anchors.sort_by_key(|c| c.not_after);
    let pem: String = anchors.iter().map(|c| to_pem(&c.der)).collect();
    TrustAnchors::from_pem(pem.as_bytes(), now).context("the bundle is not usable")?;
    std::io::stdout()
        .write_all(pem.as_bytes())
        .context("cannot write the bundle to stdout")?;
    summarize(&anchors, duplicates, now);
    Ok(ExitCode::SUCCESS)
}

/// Every anchor in `files`, checked, without repeats; and how many repeats were dropped.
fn collect(files: &[PathBuf], now: SystemTime) -> anyhow::Result<(Vec<CertInfo>, usize)> {
    let mut seen = HashSet::new();
    let (mut anchors, mut duplicates) = (Vec::new(), 0);
    for path in files {
        let shown = path.display();
        let certs = parse_pem_chain(read_text(path, "bundle input")?.as_bytes())
            .map_err(|e| anyhow::anyhow!("{shown}: {e}; expected PEM CA certificates"))?;
        for c in certs {
            if !c.is_ca || !c.can_sign_certs {
                bail!(
                    "{shown}: {} is not a CA certificate (needs CA:true and keyCertSign); a bundle holds trust anchors only",
                    c.subject
                );
            }
            if c.not_after <= now {
                bail!(
                    "{shown}: trust anchor {} expired on {}; leave it out of the bundle",
                    c.subject,
                    fmt_time(c.not_after)
                );
            }
            if seen.insert(c.fingerprint_sha256.clone()) {
                anchors.push(c);
            } else {
                duplicates += 1;
            }
        }
    }
    Ok((anchors, duplicates))
}

fn summarize(anchors: &[CertInfo], duplicates: usize, now: SystemTime) {
    let dropped = match duplicates {
        0 => String::new(),
        n => format!(", {n} duplicate(s) dropped"),
    };
    eprintln!(
        "bundle: {} trust anchor(s){dropped}, earliest expiry first",
        anchors.len()
    );
    for c in anchors {
        let v = CertView::new(c, now);
        let note = if c.not_before > now {
            format!(", not valid until {}", v.not_before)
        } else {
            String::new()
        };
        eprintln!(
            "  {}  not after {} ({}{note})  sha256 {}",
            v.subject,
            v.not_after,
            v.left_text(),
            v.fingerprint_sha256
        );
    }
}
