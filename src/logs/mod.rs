//! Service output as log records: line splitting, output formats, the
//! in-memory ring for `svctl logs`, timestamps. Pure: no I/O here; the
//! runtime's `output` module reads the pipes and writes the sinks.

pub mod format;
pub mod lines;
pub mod ring;
pub mod time;

use std::path::PathBuf;

/// Which of a service's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How lines reach the container's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `name | line`, names padded to one width.
    Prefix,
    /// One JSON object per line: time, service, stream, line.
    Json,
    /// The line as the service wrote it.
    Raw,
    /// No pipe: the service writes to corral's own stdout and stderr.
    Inherit,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "prefix" => Format::Prefix,
            "json" => Format::Json,
            "raw" => Format::Raw,
            "inherit" => Format::Inherit,
            _ => return None,
        })
    }
}

/// What happens when the container's output cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Stop reading the service's pipe until there is room: nothing is
    /// lost, the service waits on its writes.
    Block,
    /// Keep reading and drop lines for the container output, counting them.
    Drop,
}

/// A log file with size-based rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: PathBuf,
    /// Rotate once the file would grow past this.
    pub max_size: u64,
    /// Rotated files kept: `current.1` ... `current.N`.
    pub keep: u32,
}

/// A service's `[log]` table, validated. `None` fields take the global
/// settings (environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    pub format: Option<Format>,
    pub timestamps: Option<bool>,
    pub on_full: OnFull,
    pub ring_lines: usize,
    pub ring_bytes: usize,
    pub file: Option<FileSpec>,
}

pub const DEFAULT_RING_LINES: usize = 1000;
pub const DEFAULT_RING_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_KEEP: u32 = 5;

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            format: None,
            timestamps: None,
            on_full: OnFull::Block,
            ring_lines: DEFAULT_RING_LINES,
            ring_bytes: DEFAULT_RING_BYTES,
            file: None,
        }
    }
}
