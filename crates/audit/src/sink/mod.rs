//! Where records go: a rotating file and/or standard output. A sink writes whole batches
//! of lines; a batch that fails leaves no partial line behind where that can be undone.

pub mod file;

use std::io::{self, Write};

/// A destination for audit lines.
pub trait Sink: Send {
    /// Writes `batch` (complete lines, each ending in `\n`) and hands it to the OS.
    fn write(&mut self, batch: &[u8]) -> io::Result<()>;
    /// A short name for logs and gap records (`file`, `stdout`).
    fn name(&self) -> &'static str;
    /// Whether [`undo`](Sink::undo) can take back the last batch (a file can, a stream
    /// cannot). Sinks that can are written first.
    fn can_undo(&self) -> bool {
        false
    }
    /// Removes the batch written last, so that a batch another sink refused is in none.
    fn undo(&mut self) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Proves that `bytes` more would fit now, leaving nothing behind (a probe while the
    /// sink fails: a full disk may still take a short line but not a record).
    fn reserve(&mut self, _bytes: usize) -> io::Result<()> {
        Ok(())
    }
}

/// Records on standard output, a stream of their own (diagnostic logs go to stderr).
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(batch)?;
        out.flush()
    }

    fn name(&self) -> &'static str {
        "stdout"
    }
}
