//! Command-line options of the soak run (everything after `cargo bench --bench soak --`).

use std::time::Duration;

pub const USAGE: &str = "\
usage: cargo bench --bench soak -- [OPTIONS]

  --duration D     how long to run (default 1h; e.g. 4m, 30m, 1h)
  --rate N         Certify calls per second; default: half the capacity measured at start
  --interval D     time between samples (default 30s)
  --warmup D       samples before this are not judged (default: one cycle of the five
                   fault kinds plus 1m, at least 5m; 1m if --duration < 20m)
  --tokens N       distinct pod tokens in the pool (default 1000)
  --fault-every N  inject a TokenReview fault every N minutes (default 2)
  --help           this text

The issuer is rotated every minute. The run ends with PASS (exit 0) or FAIL (exit 1).";

#[derive(Clone, Debug)]
pub struct Options {
    pub help: bool,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub interval: Duration,
    pub warmup: Duration,
    pub tokens: usize,
    pub fault_every: u64,
    /// The command as typed, for the report.
    pub command: String,
}

impl Options {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let args: Vec<String> = args.filter(|a| a != "--bench").collect();
        let command = match args.is_empty() {
            true => "cargo bench --bench soak".to_owned(),
            false => format!("cargo bench --bench soak -- {}", args.join(" ")),
        };
        let mut o = Options {
            help: false,
            duration: Duration::from_secs(3600),
            rate: None,
            interval: Duration::from_secs(30),
            warmup: Duration::ZERO,
            tokens: 1000,
            fault_every: 2,
            command,
        };
        let mut warmup = None;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--help" | "-h" => o.help = true,
                "--duration" => o.duration = duration(&value("--duration")?)?,
                "--rate" => o.rate = Some(positive(&value("--rate")?)?),
                "--interval" => o.interval = duration(&value("--interval")?)?,
                "--warmup" => warmup = Some(duration(&value("--warmup")?)?),
                "--tokens" => o.tokens = positive(&value("--tokens")?)? as usize,
                "--fault-every" => o.fault_every = positive(&value("--fault-every")?)? as u64,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if o.interval < Duration::from_secs(1) || o.duration < Duration::from_secs(60) {
            return Err("--interval must be at least 1s and --duration at least 1m".into());
        }
        // Judging starts once every kind of fault has been seen (five kinds, one every
        // `fault_every` minutes), plus a minute: each kind leaves its own high-water mark in
        // the allocator (more tasks and buffers while reviews stall), and a baseline taken
        // before one of them would count it as growth.
        let cycle = Duration::from_secs(60 * (5 * o.fault_every + 1));
        let default_warmup = match o.duration < Duration::from_secs(1200) {
            true => Duration::from_secs(60),
            false => cycle.max(Duration::from_secs(300)),
        };
        o.warmup = warmup.unwrap_or(default_warmup).min(o.duration / 2);
        Ok(o)
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration (e.g. 30s, 5m, 1h): {e}"))
}

fn positive(s: &str) -> Result<f64, String> {
    match s.replace('_', "").parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}
