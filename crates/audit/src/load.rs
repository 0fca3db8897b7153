//! Reading audit files for `certmint audit verify` and `find`: lines with their numbers,
//! parsed where they parse, files put in the order their first records were written.

use std::path::{Path, PathBuf};

use super::record::Record;

/// Largest audit file read (rotation keeps files far smaller).
const MAX_FILE: u64 = 2 * 1024 * 1024 * 1024;

/// Why the files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read audit file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One line of a file.
pub struct Line {
    /// 1-based.
    pub number: usize,
    pub bytes: Vec<u8>,
    /// The line ended with a newline (false only for a file's cut-off tail).
    pub complete: bool,
    pub record: Option<Record>,
}

/// One audit file, parsed.
pub struct AuditFile {
    pub path: PathBuf,
    pub lines: Vec<Line>,
}

impl AuditFile {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let bytes = certmint_core::fsutil::read_bounded(path, MAX_FILE).map_err(|source| {
            LoadError::Read {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            lines: split(&bytes),
        })
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// When the first record was written, and its `seq` (to order within one millisecond).
    fn first_written(&self) -> Option<(std::time::SystemTime, u64)> {
        let record = self.lines.iter().find_map(|l| l.record.as_ref())?;
        let time = humantime::parse_rfc3339_weak(&record.time).ok()?;
        Some((time, record.seq))
    }
}

fn split(bytes: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, complete, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        lines.push(Line {
            number: lines.len() + 1,
            bytes: line.to_vec(),
            complete,
            record: serde_json::from_slice(line).ok(),
        });
        rest = next;
    }
    lines
}

/// Reads every file and orders them by the time of their first record (rotated files
/// then come before the current one whatever order a shell glob gives).
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<AuditFile>, LoadError> {
    let mut files = paths
        .iter()
        .map(|p| AuditFile::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    files.sort_by_key(|f| f.first_written().map_or((1, None), |t| (0, Some(t))));
    Ok(files)
}
