//! The machine a run happened on, and how busy it was: benchmark numbers on a 2-core box
//! mean little if a compiler was running next to them.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub commit: String,
    pub loadavg: String,
    /// Other processes using CPU right now (name and % of one core), from `top`.
    pub busy: Vec<(String, f64)>,
}

impl Machine {
    pub fn now() -> Self {
        Machine {
            date: utc_now(),
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: output("uname", &["-r"]),
            commit: git_commit(),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            busy: busy_processes(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} | {} × {} | Linux {} | certmint {} | {}",
            self.date,
            self.cores,
            self.cpu,
            self.kernel,
            self.commit,
            self.load_line()
        )
    }

    pub fn load_line(&self) -> String {
        let busy = match self.busy.is_empty() {
            true => "none".to_owned(),
            false => self
                .busy
                .iter()
                .map(|(n, c)| format!("{n} {c:.0}%"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!(
            "load average {} | other busy processes: {busy}",
            self.loadavg
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "date": self.date, "cpu": self.cpu, "cores": self.cores, "kernel": self.kernel,
            "commit": self.commit, "loadavg": self.loadavg,
            "busy": self.busy.iter().map(|(n, c)| json!({"process": n, "cpu_percent": c})).collect::<Vec<_>>(),
        })
    }
}

fn utc_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn git_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = output("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = !output("git", &["-C", dir, "status", "--porcelain", "--", "src"]).is_empty();
    if dirty { format!("{head}+dirty") } else { head }
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Processes other than this one using ≥ 5 % of a core, per one `top` sample.
fn busy_processes() -> Vec<(String, f64)> {
    let me = std::process::id().to_string();
    let text = output("top", &["-bn1", "-d", "0.5", "-w", "200"]);
    let mut busy = Vec::new();
    for line in text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("PID"))
        .skip(1)
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 12 || f[0] == me || f[11] == "top" {
            continue;
        }
        if let Ok(cpu) = f[8].parse::<f64>()
            && cpu >= 5.0
        {
            busy.push((f[11].to_owned(), cpu));
        }
    }
    busy
}

/// CPU time of this process (all threads) so far.
pub fn process_cpu() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    stat_cpu("/proc/thread-self/stat")
}

/// utime + stime from a `stat` file (fields 14 and 15; clock ticks of 1/100 s on Linux).
fn stat_cpu(path: &str) -> Duration {
    let Ok(s) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    let Some((_, rest)) = s.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time used by all processes on the machine so far (from `/proc/stat`).
pub fn system_busy() -> Duration {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Duration::from_millis(busy * 10)
}

/// Measures how much CPU other processes use while it lives.
pub struct Noise {
    system: Duration,
    process: Duration,
    start: std::time::Instant,
}

impl Noise {
    pub fn start() -> Self {
        Noise {
            system: system_busy(),
            process: process_cpu(),
            start: std::time::Instant::now(),
        }
    }

    /// Cores used by other processes on average since `start`.
    pub fn cores(&self) -> f64 {
        let other = system_busy()
            .saturating_sub(self.system)
            .saturating_sub(process_cpu().saturating_sub(self.process));
        other.as_secs_f64() / self.start.elapsed().as_secs_f64().max(1e-3)
    }
}

/// Waits (at most `limit`) until other processes use less than 0.1 core for 3 s in a row.
/// Returns false if the machine stayed busy.
pub fn wait_quiet(limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let mut quiet_for = 0;
    while std::time::Instant::now() < deadline {
        let n = Noise::start();
        std::thread::sleep(Duration::from_secs(1));
        quiet_for = if n.cores() < 0.1 { quiet_for + 1 } else { 0 };
        if quiet_for >= 3 {
            return true;
        }
    }
    false
}
