//! Results: rows of measurements, targets with PASS/FAIL, the machine state; printed as a
//! table or as JSON.

use serde_json::{Value, json};

use super::machine::Machine;

/// One measured quantity.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

/// One line of results: a section, a case, its measurements and a free-text note.
#[derive(Clone, Debug)]
pub struct Row {
    pub section: &'static str,
    pub case: String,
    pub metrics: Vec<Metric>,
    pub note: String,
}

impl Row {
    pub fn new(section: &'static str, case: impl Into<String>) -> Self {
        Row {
            section,
            case: case.into(),
            metrics: Vec::new(),
            note: String::new(),
        }
    }

    pub fn metric(mut self, name: &'static str, value: f64, unit: &'static str) -> Self {
        self.metrics.push(Metric { name, value, unit });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    AtLeast,
    AtMost,
}

/// A target from issue 6 next to its measured value.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub measured: f64,
    pub cmp: Cmp,
    pub limit: f64,
    pub unit: &'static str,
}

impl Target {
    pub fn at_least(
        name: impl Into<String>,
        measured: f64,
        limit: f64,
        unit: &'static str,
    ) -> Self {
        Self::new(name, measured, Cmp::AtLeast, limit, unit)
    }

    pub fn at_most(name: impl Into<String>, measured: f64, limit: f64, unit: &'static str) -> Self {
        Self::new(name, measured, Cmp::AtMost, limit, unit)
    }

    fn new(
        name: impl Into<String>,
        measured: f64,
        cmp: Cmp,
        limit: f64,
        unit: &'static str,
    ) -> Self {
        Target {
            name: name.into(),
            measured,
            cmp,
            limit,
            unit,
        }
    }

    pub fn pass(&self) -> bool {
        match self.cmp {
            Cmp::AtLeast => self.measured >= self.limit,
            Cmp::AtMost => self.measured <= self.limit,
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub machine_before: Option<Machine>,
    pub machine_after: Option<Machine>,
    pub command: String,
    pub wall_secs: f64,
    pub log_file: String,
    /// Per section: cores used by other processes meanwhile, and whether the machine was
    /// quiet when it started (always true without `--wait-quiet`).
    pub noise: Vec<(&'static str, f64, bool)>,
}

impl Report {
    pub fn print_table(&self) {
        println!("certmint benchmark — {}", self.command);
        if let Some(m) = &self.machine_before {
            println!("machine: {}", m.describe());
        }
        if let Some(m) = &self.machine_after {
            println!("after:   {}", m.load_line());
        }
        println!();
        println!("{:<9} {:<44} results", "section", "case");
        let mut last = "";
        for r in &self.rows {
            if r.section != last && !last.is_empty() {
                println!();
            }
            last = r.section;
            let metrics: Vec<String> = r.metrics.iter().map(fmt_metric).collect();
            println!("{:<9} {:<44} {}", r.section, r.case, metrics.join("  "));
            if !r.note.is_empty() {
                println!("{:<9} {:<44} ({})", "", "", r.note);
            }
        }
        println!();
        println!(
            "{:<58} {:>14} {:>16}  result",
            "target", "measured", "limit"
        );
        for t in &self.targets {
            let op = if t.cmp == Cmp::AtLeast { "≥" } else { "≤" };
            println!(
                "{:<58} {:>14} {:>14} {}  {}",
                t.name,
                fmt_value(t.measured, t.unit),
                op,
                fmt_value(t.limit, t.unit),
                if t.pass() { "PASS" } else { "FAIL" }
            );
        }
        println!();
        let noise: Vec<String> = self
            .noise
            .iter()
            .map(|(s, c, quiet)| {
                let child = if *s == "startup" {
                    " (incl. the certmint child)"
                } else {
                    ""
                };
                let busy = if *quiet { "" } else { " (busy at start)" };
                format!("{s} {c:.2}{child}{busy}")
            })
            .collect();
        println!(
            "CPU used by other processes during each section (cores): {}",
            noise.join(", ")
        );
        if self
            .noise
            .iter()
            .any(|(s, c, _)| *c > 0.1 && *s != "startup")
        {
            println!("WARNING: other processes competed for the CPU; re-run on a quiet machine");
        }
        println!(
            "run took {:.0} s; server logs: {}",
            self.wall_secs, self.log_file
        );
    }

    pub fn to_json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let metrics: serde_json::Map<String, Value> = r
                    .metrics
                    .iter()
                    .map(|m| (m.name.to_owned(), json!({"value": m.value, "unit": m.unit})))
                    .collect();
                json!({"section": r.section, "case": r.case, "metrics": metrics, "note": r.note})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "target": t.name, "measured": t.measured, "unit": t.unit,
                    "cmp": if t.cmp == Cmp::AtLeast { ">=" } else { "<=" },
                    "limit": t.limit, "pass": t.pass(),
                })
            })
            .collect();
        let doc = json!({
            "command": self.command,
            "machine_before": self.machine_before.as_ref().map(Machine::to_json),
            "machine_after": self.machine_after.as_ref().map(Machine::to_json),
            "wall_secs": self.wall_secs,
            "other_cpu_cores": self.noise.iter().map(|(s, c, q)| json!({"section": s, "cores": c, "quiet_at_start": q})).collect::<Vec<_>>(),
            "results": rows,
            "targets": targets,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

fn fmt_metric(m: &Metric) -> String {
    format!("{} {}", m.name, fmt_value(m.value, m.unit))
}

/// Values with their unit, at a precision that suits the magnitude.
pub fn fmt_value(v: f64, unit: &str) -> String {
    let a = v.abs();
    let n = if a == 0.0 {
        "0".to_owned()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    match unit {
        "" => n,
        "/s" => format!("{n}/s"),
        "%" => format!("{n}%"),
        "x" => format!("{n}×"),
        u => format!("{n} {u}"),
    }
}
