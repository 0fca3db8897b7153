//! The file sink: appends to `path`; before a write would pass `max_size` the file is
//! rotated to `path.1` (older ones shift to `path.2` … `path.KEEP`, the oldest is removed).
//! The chain continues across files: the new file's first line links to the old one's last.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Sink;
use crate::config::FileSinkConfig;

/// The tail read to find the last line of an existing file (records are far smaller).
const TAIL: u64 = 256 * 1024;

pub struct FileSink {
    path: PathBuf,
    max_size: u64,
    keep: usize,
    file: File,
    len: u64,
    /// The length before the last batch, for `undo`.
    before: u64,
}

impl FileSink {
    /// Opens (creating the directory and file if needed) and returns the sink and the
    /// file's last line, which a new chain links to. A torn last line (no newline) is
    /// terminated so that the next record starts on a line of its own.
    pub fn open(cfg: &FileSinkConfig) -> io::Result<(Self, Option<Vec<u8>>)> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = open_append(&cfg.path)?;
        let (last, torn) = last_line(&mut file)?;
        if torn {
            file.write_all(b"\n")?;
        }
        let len = file.metadata()?.len();
        let sink = Self {
            path: cfg.path.clone(),
            max_size: cfg.max_size,
            keep: cfg.keep,
            file,
            len,
            before: len,
        };
        Ok((sink, last))
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = open_append(&self.path)?;
        self.len = 0;
        tracing::info!(path = %self.path.display(), "audit file rotated");
        Ok(())
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if self.len > 0 && self.len + batch.len() as u64 > self.max_size {
            self.rotate()?;
        }
        match self.file.write_all(batch).and_then(|()| self.file.flush()) {
            Ok(()) => {
                self.before = self.len;
                self.len += batch.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Leave no torn line: cut the file back to the last whole batch.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn name(&self) -> &'static str {
        "file"
    }

    fn can_undo(&self) -> bool {
        true
    }

    fn undo(&mut self) -> io::Result<()> {
        self.file.set_len(self.before)?;
        self.len = self.before;
        Ok(())
    }

    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        let room = vec![b' '; bytes];
        let wrote = self.file.write_all(&room).and_then(|()| self.file.flush());
        let cut = self.file.set_len(self.len);
        wrote.and(cut)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
}

/// The last line of `file` (without its newline) and whether it lacks the newline.
fn last_line(file: &mut File) -> io::Result<(Option<Vec<u8>>, bool)> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((None, false));
    }
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail)?;
    let torn = !tail.ends_with(b"\n");
    let body = if torn {
        &tail[..]
    } else {
        &tail[..tail.len() - 1]
    };
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    };
    Ok((Some(line.to_vec()), torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max_size: u64, keep: usize) -> FileSinkConfig {
        FileSinkConfig {
            path: dir.join("a").join("audit.jsonl"),
            max_size,
            keep,
        }
    }

    #[test]
    fn rotates_before_passing_max_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 10, 2);
        let (mut sink, last) = FileSink::open(&c).unwrap();
        assert_eq!(last, None);
        for line in ["one", "two", "thr", "fou", "fiv", "six", "sev"] {
            sink.write(format!("{line}\n").as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&c.path), "sev\n");
        assert_eq!(read(&sink.rotated(1)), "fiv\nsix\n");
        assert_eq!(read(&sink.rotated(2)), "thr\nfou\n");
        assert!(!sink.rotated(3).exists(), "the oldest file is removed");
        let (_, last) = FileSink::open(&c).unwrap();
        assert_eq!(last.as_deref(), Some(&b"sev"[..]));
    }

    #[test]
    fn undo_takes_back_the_last_batch_and_reserve_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 2);
        let (mut sink, _) = FileSink::open(&c).unwrap();
        sink.write(b"kept\n").unwrap();
        sink.write(b"taken back\n").unwrap();
        sink.reserve(16 * 1024).unwrap();
        sink.undo().unwrap();
        sink.write(b"next\n").unwrap();
        assert_eq!(std::fs::read(&c.path).unwrap(), b"kept\nnext\n");
    }

    #[test]
    fn reserve_fails_where_a_record_does_not_fit() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let c = FileSinkConfig {
            path: full.into(),
            max_size: 1 << 20,
            keep: 1,
        };
        let (mut sink, _) = FileSink::open(&c).unwrap();
        assert!(sink.reserve(1).is_err());
    }

    #[test]
    fn a_torn_last_line_is_terminated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 2);
        std::fs::create_dir_all(c.path.parent().unwrap()).unwrap();
        std::fs::write(&c.path, b"whole\ntor").unwrap();
        let (mut sink, last) = FileSink::open(&c).unwrap();
        assert_eq!(last.as_deref(), Some(&b"tor"[..]));
        sink.write(b"next\n").unwrap();
        assert_eq!(std::fs::read(&c.path).unwrap(), b"whole\ntor\nnext\n");
    }
}
