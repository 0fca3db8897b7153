//! Section 5, the release binary: `certmint serve --config F` (files sources, JWT authn,
//! TLS on as by default) from process spawn to `/ready` = 200; its RSS at idle and while
//! `--issuances` Certify calls are made against it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certmint::cli::dev::{DevPaths, ensure_material, mint_token};

use super::args::Options;
use super::fixtures::{NS, SA, SERVER_NAME, identity};
use super::load::{self, Spec};
use super::machine::rss_mib;
use super::report::{Row, Target};
use crate::common::AUDIENCE;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

struct Setup {
    dir: PathBuf,
    paths: DevPaths,
    log: PathBuf,
}

pub fn run(opts: &Options, csrs: &[Vec<u8>], workdir: &Path) -> (Vec<Row>, Vec<Target>) {
    let dir = workdir.join("startup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("startup dir");
    let paths = DevPaths::new(&dir);
    ensure_material(&paths).expect("dev material");
    let setup = Setup {
        log: dir.join("certmint.log"),
        dir,
        paths,
    };
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let (startup_rows, startup_targets) = startup_times(opts, &setup);
    rows.extend(startup_rows);
    targets.extend(startup_targets);
    let (rss_rows, rss_targets) = rss_run(opts, &setup, csrs);
    rows.extend(rss_rows);
    targets.extend(rss_targets);
    (rows, targets)
}

fn startup_times(opts: &Options, s: &Setup) -> (Vec<Row>, Vec<Target>) {
    let runs = if opts.quick { 3 } else { 7 };
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let mut p = Process::spawn(s);
            let t = p.ready_after;
            p.stop();
            t.as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let row = Row::new("startup", "spawn → /ready 200 (TLS, files, jwt)")
        .metric("median", median, "ms")
        .metric("min", times[0], "ms")
        .metric("max", times[times.len() - 1], "ms")
        .note(format!("{runs} spawns of the release binary"));
    let target = Target::at_most("start-up to ready (median)", median, 100.0, "ms");
    (vec![row], vec![target])
}

/// RSS at idle, then after 10 %, 50 % and 100 % of the issuances.
fn rss_run(opts: &Options, s: &Setup, csrs: &[Vec<u8>]) -> (Vec<Row>, Vec<Target>) {
    let mut p = Process::spawn(s);
    std::thread::sleep(Duration::from_secs(1));
    let (idle, _) = rss_mib(p.pid());
    let total = opts.issuances;
    let token =
        mint_token(&s.paths, NS, SA, AUDIENCE, Duration::from_secs(4 * 3600)).expect("dev token");
    let target = load::Target {
        addr: p.grpc,
        tls: Some((
            std::fs::read_to_string(&s.paths.anchors).expect("anchors"),
            SERVER_NAME.to_owned(),
        )),
    };
    let mut rows =
        vec![Row::new("startup", "RSS idle (1 s after ready)").metric("rss", idle, "MiB")];
    let mut done = 0;
    let mut samples = Vec::new();
    let mut secs = 0.0;
    for pct in [10, 50, 100] {
        let upto = total * pct / 100;
        let spec = Spec {
            target: target.clone(),
            identity: identity(),
            token: token.clone().into_bytes(),
            csrs,
            istio: false,
            first_csr: done,
            requests: upto - done,
            warmup: 0,
            concurrency: 64,
            conns: 1,
            time_cap: None,
        };
        let out = load::run(&spec);
        secs += out.wall.as_secs_f64();
        done = upto;
        let (rss, peak) = rss_mib(p.pid());
        samples.push(rss);
        rows.push(
            Row::new("startup", format!("RSS after {done} issuances ({pct} %)"))
                .metric("rss", rss, "MiB")
                .metric("peak", peak, "MiB")
                .metric("certs", out.rate(), "/s")
                .metric("errors", out.errors as f64, "")
                .note(format!(
                    "TLS c64 1 conn, JWT verified per call; CSRs cycle through {} distinct keys",
                    csrs.len()
                )),
        );
    }
    p.stop();
    let last = samples.last().copied().unwrap_or_default();
    let growth = last - samples.first().copied().unwrap_or_default();
    rows.push(
        Row::new("startup", "RSS growth 10 % → 100 % of issuances")
            .metric("growth", growth, "MiB")
            .note(format!("{total} issuances in {secs:.0} s")),
    );
    let targets = vec![
        Target::at_most("RSS idle", idle, 40.0, "MiB"),
        Target::at_most(format!("RSS after {total} issuances"), last, 80.0, "MiB"),
        Target::at_most(
            "RSS growth from 10 % to 100 % of issuances",
            growth,
            4.0,
            "MiB",
        ),
    ];
    (rows, targets)
}

/// A `certmint serve` child process.
struct Process {
    child: Child,
    grpc: SocketAddr,
    ready_after: Duration,
}

impl Process {
    /// Writes a config with fresh ports, spawns, and polls `/ready` every 1 ms.
    fn spawn(s: &Setup) -> Self {
        let (grpc, admin) = (free_port(), free_port());
        let config = s.dir.join("certmint.yaml");
        std::fs::write(&config, config_yaml(&s.paths, grpc, admin)).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .expect("log file");
        let start = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn certmint");
        let mut p = Process {
            child,
            grpc,
            ready_after: Duration::ZERO,
        };
        while get_status(admin, "/ready") != Some(200) {
            if start.elapsed() > READY_TIMEOUT || p.child.try_wait().ok().flatten().is_some() {
                p.stop();
                panic!("certmint serve not ready; see {}", s.log.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        p.ready_after = start.elapsed();
        p
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

fn config_yaml(p: &DevPaths, grpc: SocketAddr, admin: SocketAddr) -> String {
    format!(
        "listen: \"{grpc}\"\nadmin_listen: \"{admin}\"\n\
         issuer:\n  source: files\n  dir: {issuer}\n\
         trust_anchors:\n  source: files\n  file: {anchors}\n\
         authn:\n  mode: jwt\n  audiences: [{AUDIENCE}]\n  jwt:\n    keys: [{key}]\n    issuers: [{iss}]\n\
         tls:\n  enabled: true\n",
        issuer = p.issuer_dir.display(),
        anchors = p.anchors.display(),
        key = p.token_pub.display(),
        iss = certmint::cli::dev::DEV_TOKEN_ISSUER,
    )
}

/// The HTTP status of `GET path`, or `None` while nothing answers.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
