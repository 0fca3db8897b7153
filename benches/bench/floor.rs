//! Section 1, the crypto floor: ECDSA P-256 sign and verify on one core, with ring and with
//! aws-lc-rs side by side. Sections that compare against the floor use the faster library,
//! so a ratio never flatters certmint with a slow floor.

use std::time::{Duration, Instant};

use super::args::Options;
use super::report::Row;
use super::signers::{self, Lib, Signer};

/// Operations per second on one core.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub lib: Lib,
    pub sign: f64,
    pub verify: f64,
}

impl Floor {
    /// certs/s/core = 1 / (1/sign + 1/verify).
    pub fn certs_per_core(&self) -> f64 {
        1.0 / (1.0 / self.sign + 1.0 / self.verify)
    }
}

pub fn run(opts: &Options) -> Vec<Row> {
    let window = if opts.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    };
    let mut rows = Vec::new();
    let mut floors = Vec::new();
    for lib in Lib::ALL {
        let mut bench = signers::new(lib);
        let sign = median_rate(window, || bench.sign());
        let verify = median_rate(window, || bench.verify());
        let floor = Floor { lib, sign, verify };
        let name = lib.name();
        rows.push(
            Row::new("floor", format!("ECDSA P-256 sign, 400 B ({name})"))
                .metric("rate", sign, "/s")
                .metric("each", 1e6 / sign, "µs"),
        );
        rows.push(
            Row::new("floor", format!("ECDSA P-256 verify, 400 B ({name})"))
                .metric("rate", verify, "/s")
                .metric("each", 1e6 / verify, "µs"),
        );
        rows.push(
            Row::new(
                "floor",
                format!("floor ({name}) = 1/(1/sign + 1/verify), one core"),
            )
            .metric("certs", floor.certs_per_core(), "/s")
            .metric("each", 1e6 / floor.certs_per_core(), "µs"),
        );
        floors.push(floor);
    }
    let (ring, aws) = (floors[0].certs_per_core(), floors[1].certs_per_core());
    rows.push(
        Row::new("floor", "aws-lc-rs floor / ring floor")
            .metric("ratio", aws / ring, "x")
            .note("certmint uses aws-lc-rs; ratios elsewhere use the faster floor"),
    );
    rows
}

/// The floor measured once more, in one short window per operation and library: sections
/// that compare against the floor take it next to their own measurements, because this VM's
/// speed drifts by 10–20 % within minutes. Returns the faster library's floor.
pub fn measure(window: Duration) -> Floor {
    Lib::ALL
        .into_iter()
        .map(|lib| {
            let mut bench: Box<dyn Signer> = signers::new(lib);
            let sign = rate(window, &mut || bench.sign());
            let verify = rate(window, &mut || bench.verify());
            Floor { lib, sign, verify }
        })
        .max_by(|a, b| a.certs_per_core().total_cmp(&b.certs_per_core()))
        .expect("two libraries")
}

/// The median of three timing windows of `f`, in calls per second (after a warm-up).
pub fn median_rate(window: Duration, mut f: impl FnMut()) -> f64 {
    rate(window / 4, &mut f);
    let mut rates = [0.0; 3];
    for r in &mut rates {
        *r = rate(window, &mut f);
    }
    rates.sort_by(f64::total_cmp);
    rates[1]
}

pub fn rate(window: Duration, f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..16 {
            f();
        }
        n += 16;
        let elapsed = start.elapsed();
        if elapsed >= window {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}
