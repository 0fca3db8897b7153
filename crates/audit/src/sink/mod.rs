//! Where records go: a rotating file and/or standard output. A sink writes whole batches
//! of lines; a batch that fails leaves no partial line behind where that can be undone.

pub mod file;

use std::io::{self, Write};

/// A destination for audit lines.
pub trait Sink: Send {
    /// Writes `batch` (complete lines, each ending in `\n`) and hands it to the OS.
    fn write(&mut self, batch: &[u8]) -> io::Result<()>;
    /// A short name for logs (`file`, `stdout`).
    fn name(&self) -> &'static str;
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
