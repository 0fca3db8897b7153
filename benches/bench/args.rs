//! Command-line options of the harness (everything after `cargo bench --bench certmint --`).

pub const USAGE: &str = "\
usage: cargo bench --bench certmint -- [OPTIONS]

  --json             print machine-readable results instead of the table
  --quick            a short smoke run (small counts, herd 500, 20 000 issuances)
  --herd N           distinct tokens in the herd (default 10000)
  --issuances N      Certify calls made against the release binary for the RSS run
                     (default 1000000)
  --only S[,S...]    run only these sections: floor, pipeline, e2e, herd, startup
                     (pipeline and e2e also run floor, for their ratios)
  --wait-quiet SECS  before each section, wait up to SECS for other processes to leave
                     the CPU alone (< 0.1 core for 3 s)
  --profile CASE     no report: run one case for --count iterations, for perf or
                     callgrind (CASE: pipeline, certifier, plaintext, tls, audit, istio, hsm,
                     hsm-sign, memory-sign)
  --count N          iterations for --profile (default 20000)
  --help             this text";

/// The five sections of issue 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Floor,
    Pipeline,
    E2e,
    Herd,
    Startup,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Floor,
        Section::Pipeline,
        Section::E2e,
        Section::Herd,
        Section::Startup,
    ];

    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "floor" => Section::Floor,
            "pipeline" => Section::Pipeline,
            "e2e" | "end-to-end" => Section::E2e,
            "herd" => Section::Herd,
            "startup" | "start-up" => Section::Startup,
            _ => return Err(format!("unknown section {s:?}")),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub json: bool,
    pub quick: bool,
    pub help: bool,
    pub herd: usize,
    pub issuances: usize,
    pub sections: Vec<Section>,
    pub wait_quiet: std::time::Duration,
    pub profile: Option<String>,
    pub count: usize,
    /// The arguments as given, for the report.
    pub command: String,
}

impl Options {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let args: Vec<String> = args.collect();
        let mut o = Options {
            json: false,
            quick: false,
            help: false,
            herd: 0,
            issuances: 0,
            sections: Section::ALL.to_vec(),
            wait_quiet: std::time::Duration::ZERO,
            profile: None,
            count: 20_000,
            command: command_line(&args),
        };
        let (mut herd, mut issuances) = (None, None);
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                // `cargo bench` passes --bench to harness = false targets.
                "--bench" => {}
                "--json" => o.json = true,
                "--quick" => o.quick = true,
                "--help" | "-h" => o.help = true,
                "--herd" => herd = Some(number(&value("--herd")?)?),
                "--issuances" => issuances = Some(number(&value("--issuances")?)?),
                "--wait-quiet" => {
                    o.wait_quiet =
                        std::time::Duration::from_secs(number(&value("--wait-quiet")?)? as u64);
                }
                "--profile" => o.profile = Some(value("--profile")?),
                "--count" => o.count = number(&value("--count")?)?,
                "--only" => {
                    o.sections = value("--only")?
                        .split(',')
                        .map(Section::parse)
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        o.herd = herd.unwrap_or(if o.quick { 500 } else { 10_000 });
        o.issuances = issuances.unwrap_or(if o.quick { 20_000 } else { 1_000_000 });
        Ok(o)
    }

    pub fn runs(&self, s: Section) -> bool {
        self.sections.contains(&s)
    }

    /// The floor section is shown whenever a section that compares against it runs.
    pub fn needs_floor(&self) -> bool {
        [Section::Floor, Section::Pipeline, Section::E2e]
            .iter()
            .any(|s| self.runs(*s))
    }

    /// Scales a count down for `--quick`.
    pub fn scaled(&self, full: usize) -> usize {
        if self.quick { (full / 10).max(1) } else { full }
    }
}

fn number(s: &str) -> Result<usize, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))
}

fn command_line(args: &[String]) -> String {
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    match shown.is_empty() {
        true => "cargo bench --bench certmint".into(),
        false => format!("cargo bench --bench certmint -- {}", shown.join(" ")),
    }
}
