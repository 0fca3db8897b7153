//! `certmint audit verify`: walks the lines of one or more audit files and checks every
//! link of every chain, each checkpoint's head and count, and (with a public key) each
//! checkpoint's signature. It stops at the first break and says where and what it is.

use std::collections::HashMap;
use std::fmt;

use super::chain::line_hash;
use super::checkpoint::{AuditVerifier, UNSIGNED};
use super::load::{AuditFile, Line};
use super::record::{Body, Missed, Record};

/// The first break found: file, line, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub records: u64,
    pub chains: usize,
    pub checkpoints: u64,
    pub signatures_verified: u64,
    /// Signed checkpoints seen without a key to check them.
    pub signatures_unchecked: u64,
    /// Facts an auditor should know that are not breaks (chain begins mid-way, no closing
    /// checkpoint, records after the last signed checkpoint).
    pub notes: Vec<String>,
    /// Records the writer said it could not write, in `gap` records: ranges missing from
    /// these files that another sink holds, and records no sink took. Not breaks: the
    /// chain itself accounts for them.
    pub gaps: Vec<String>,
    pub broken: Option<Break>,
}

struct ChainState {
    head: String,
    seq: u64,
    replica: String,
    closed: bool,
    /// Records after the last verified signature.
    unsigned_tail: u64,
}

/// The previous line of the file being walked.
struct Prev {
    hash: String,
    chain: String,
    seq: u64,
    line: usize,
}

/// Verifies `files` (already in order, see `load::read_all`).
pub fn verify(files: &[AuditFile], key: Option<&AuditVerifier>) -> Report {
    let mut walk = Walk {
        key,
        chains: HashMap::new(),
        report: Report::default(),
    };
    for file in files {
        if let Err(what) = walk.file(file) {
            walk.report.broken = Some(what);
            break;
        }
    }
    walk.finish()
}

struct Walk<'a> {
    key: Option<&'a AuditVerifier>,
    chains: HashMap<String, ChainState>,
    report: Report,
}

impl Walk<'_> {
    fn file(&mut self, file: &AuditFile) -> Result<(), Break> {
        let at = |line: usize, what: String| Break {
            file: file.name(),
            line,
            what,
        };
        let positions: HashMap<(&str, u64), usize> = file
            .lines
            .iter()
            .filter_map(|l| {
                Some((
                    (l.record.as_ref()?.chain.as_str(), l.record.as_ref()?.seq),
                    l.number,
                ))
            })
            .collect();
        let mut prev: Option<Prev> = None;
        for line in &file.lines {
            let record = parsed(line).map_err(|w| at(line.number, w.into()))?;
            let hash = line_hash(&line.bytes);
            let linked = match &prev {
                None => self.first_of_file(record, &file.name()),
                Some(p) => self.follows(p, record, &positions),
            };
            linked.map_err(|(n, w)| at(n.unwrap_or(line.number), w))?;
            self.account(record, &hash)
                .map_err(|w| at(line.number, w))?;
            prev = Some(Prev {
                hash,
                chain: record.chain.clone(),
                seq: record.seq,
                line: line.number,
            });
        }
        Ok(())
    }

    /// The first line of a file: it continues a chain seen in an earlier file, or begins
    /// one (a `start` record, or a chain whose earlier files were not given).
    fn first_of_file(&mut self, r: &Record, file: &str) -> Linked {
        if let Some(state) = self.chains.get(&r.chain) {
            if let Some(m) = declared_gap(r, state.seq, &state.head) {
                self.missed_here(r, m);
                return Ok(());
            }
            if r.prev != state.head {
                return Err((None, gap(state.seq, r.seq, "the end of the previous file")));
            }
            return Ok(());
        }
        if !matches!(r.body, Body::Start(_)) {
            self.report.notes.push(format!(
                "chain {} ({}) begins at seq {} in {file}: earlier records were not given",
                r.chain, r.replica, r.seq
            ));
        }
        self.begin(r);
        Ok(())
    }

    /// A line after another in the same file.
    fn follows(&mut self, p: &Prev, r: &Record, positions: &HashMap<(&str, u64), usize>) -> Linked {
        if r.prev == p.hash {
            if r.chain == p.chain && r.seq == p.seq + 1 && !matches!(r.body, Body::Start(_)) {
                return Ok(());
            }
            if r.chain != p.chain && matches!(r.body, Body::Start(_)) && r.seq == 0 {
                // A restarted replica continues the file with a new chain.
                if self.chains.contains_key(&r.chain) {
                    return Err((None, format!("chain {} starts a second time", r.chain)));
                }
                self.begin(r);
                return Ok(());
            }
            return Err((
                None,
                format!(
                    "links to line {} but its seq or chain does not follow",
                    p.line
                ),
            ));
        }
        if r.chain == p.chain
            && let Some(m) = declared_gap(r, p.seq, &p.hash)
        {
            self.missed_here(r, m);
            return Ok(());
        }
        if r.chain != p.chain {
            let other = self
                .chains
                .get(&p.chain)
                .map_or("?", |s| s.replica.as_str());
            return Err((
                None,
                format!(
                    "record of chain {} (replica {}) follows chain {} (replica {}) without a link: two chains spliced",
                    r.chain, r.replica, p.chain, other
                ),
            ));
        }
        if r.seq == p.seq + 1 {
            return Err((
                Some(p.line),
                format!(
                    "record altered: line {} does not link to it (hash mismatch)",
                    p.line + 1
                ),
            ));
        }
        if r.seq > p.seq + 1 {
            if let Some(later) = positions.get(&(r.chain.as_str(), p.seq + 1)) {
                return Err((
                    None,
                    format!(
                        "out of order: seq {} here, but seq {} is at line {later}",
                        r.seq,
                        p.seq + 1
                    ),
                ));
            }
            return Err((None, gap(p.seq, r.seq, &format!("line {}", p.line))));
        }
        Err((
            None,
            format!(
                "out of order: seq {} follows seq {} (line {})",
                r.seq, p.seq, p.line
            ),
        ))
    }

    fn missed_here(&mut self, r: &Record, m: &Missed) {
        let reason = match &r.body {
            Body::Gap(g) => g.reason.as_str(),
            _ => "",
        };
        self.report.gaps.push(format!(
            "chain {} ({}): seq {}–{} are not in these files; the writer recorded at seq {} that this {} sink missed them ({reason}); not a deletion",
            r.chain, r.replica, m.from, m.to, r.seq, m.sink
        ));
    }

    fn begin(&mut self, r: &Record) {
        self.report.chains += 1;
        // The head is set by `account`, which runs next.
        self.chains.insert(
            r.chain.clone(),
            ChainState {
                head: String::new(),
                seq: r.seq,
                replica: r.replica.clone(),
                closed: false,
                unsigned_tail: 0,
            },
        );
    }

    /// Updates the chain with a linked record; checks checkpoints.
    fn account(&mut self, r: &Record, hash: &str) -> Result<(), String> {
        let key = self.key;
        let state = self
            .chains
            .get_mut(&r.chain)
            .ok_or("record of an unknown chain")?;
        if state.closed {
            return Err(format!(
                "record after chain {}'s closing checkpoint",
                r.chain
            ));
        }
        self.report.records += 1;
        state.unsigned_tail += 1;
        if let Body::Gap(g) = &r.body {
            if g.unwritten > 0 {
                self.report.gaps.push(format!(
                    "chain {} ({}): {} record(s) before seq {} could not be written to any sink ({})",
                    r.chain, r.replica, g.unwritten, r.seq, g.reason
                ));
            }
            for s in &g.undelivered {
                self.report.gaps.push(format!(
                    "chain {} ({}): seq {}–{} in the {} sink were not delivered: their callers got UNAVAILABLE, and the sink could not take them back ({})",
                    r.chain, r.replica, s.from, s.to, s.sink, g.reason
                ));
            }
        }
        if let Body::Checkpoint(cp) = &r.body {
            self.report.checkpoints += 1;
            if cp.head != r.prev || cp.count != r.seq {
                return Err("checkpoint head or count does not match the chain".into());
            }
            if let Some(k) = key {
                k.verify(r, cp)?;
                self.report.signatures_verified += 1;
                state.unsigned_tail = 0;
            } else if cp.alg != UNSIGNED {
                self.report.signatures_unchecked += 1;
            }
            state.closed = cp.last;
        }
        state.seq = r.seq;
        state.head = hash.to_owned();
        Ok(())
    }

    fn finish(mut self) -> Report {
        for (id, s) in &self.chains {
            if !s.closed {
                self.report.notes.push(format!(
                    "chain {id} ({}) ends at seq {} without a closing checkpoint: still being written, or its tail is missing",
                    s.replica, s.seq
                ));
            }
            if self.key.is_some() && s.unsigned_tail > 0 {
                self.report.notes.push(format!(
                    "chain {id}: the last {} records are not covered by a signed checkpoint",
                    s.unsigned_tail
                ));
            }
        }
        self.report.notes.sort();
        self.report
    }
}

/// Err carries an optional line to blame instead of the current one, and what is wrong.
type Linked = Result<(), (Option<usize>, String)>;

/// The range a `gap` record `r` declares missing from the sink whose last line before it is
/// seq `seq` with hash `hash`.
fn declared_gap<'r>(r: &'r Record, seq: u64, hash: &str) -> Option<&'r Missed> {
    let Body::Gap(g) = &r.body else {
        return None;
    };
    g.missed
        .iter()
        .find(|m| m.after == hash && m.from == seq + 1 && m.to + 1 == r.seq)
}

fn parsed(line: &Line) -> Result<&Record, &'static str> {
    match (&line.record, line.complete) {
        (Some(r), _) => Ok(r),
        (None, false) => Err("record cut short (truncated file)"),
        (None, true) => Err("not a valid audit record (edited or corrupted)"),
    }
}

fn gap(last: u64, next: u64, after: &str) -> String {
    match next.checked_sub(last) {
        Some(2) => format!("record seq {} missing after {after}", last + 1),
        Some(d) if d > 2 => format!(
            "records seq {}–{} missing after {after}",
            last + 1,
            next - 1
        ),
        _ => format!("does not link to {after} (seq {next} after seq {last})"),
    }
}
