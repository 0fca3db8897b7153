//! `certmint check` output: a table for people (worst finding last) or JSON for scripts.

use std::fmt::Write;
use std::time::Duration;

use super::evaluate::{Report, Severity};
use crate::cli::describe::duration_text;

/// The report as a readable table.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "trust anchors  {}", r.trust_anchors);
    let _ = writeln!(out, "issuer         {}", r.issuer);
    let _ = writeln!(
        out,
        "checked at     {} (warn within {}, leaf lifetime {})\n",
        r.checked_at,
        duration_text(Duration::from_secs(r.warn_within_seconds)),
        duration_text(Duration::from_secs(r.leaf_lifetime_seconds))
    );
    if !r.certificates.is_empty() {
        let rows: Vec<[String; 5]> = r
            .certificates
            .iter()
            .map(|row| {
                [
                    row.role.to_string(),
                    row.cert.subject.clone(),
                    row.cert.not_after.clone(),
                    row.cert.left_text(),
                    row.cert.fingerprint_sha256.clone(),
                ]
            })
            .collect();
        let header = ["ROLE", "SUBJECT", "NOT AFTER", "LEFT", "SHA-256"].map(String::from);
        columns(&mut out, &header, &rows);
        out.push('\n');
    }
    let rows: Vec<[String; 3]> = r
        .findings
        .iter()
        .map(|f| {
            [
                label(f.severity).into(),
                f.object.clone(),
                f.message.clone(),
            ]
        })
        .collect();
    columns(
        &mut out,
        &["STATUS", "OBJECT", "FINDING"].map(String::from),
        &rows,
    );
    let _ = writeln!(
        out,
        "\nresult: {} (exit {})",
        verdict(r.result),
        r.exit_code
    );
    out
}

/// The report as pretty JSON.
pub fn json(r: &Report) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(r)? + "\n")
}

fn columns<const N: usize>(out: &mut String, header: &[String; N], rows: &[[String; N]]) {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn label(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Warn => "WARN",
        Severity::Error => "ERROR",
    }
}

fn verdict(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "healthy",
        Severity::Warn => "expiring soon or needs attention",
        Severity::Error => "invalid or expired",
    }
}
