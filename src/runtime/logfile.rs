//! A service's log file with size-based rotation: `current` is renamed to
//! `current.1` (and `.1` to `.2`, ... up to `keep`) when the next line
//! would take it past `max_size`, then a new `current` is opened. No
//! logrotate, no cron, no SIGHUP. Directories and files are created owned
//! by the service's user. Errors are logged once and the line is dropped
//! for the file only (the container output still has it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::logs::FileSpec;

pub struct LogFile {
    spec: FileSpec,
    owner: Option<(u32, u32)>,
    file: Option<File>,
    size: u64,
    /// An error was reported; the next one is not, until a write succeeds.
    failing: bool,
}

impl LogFile {
    /// `owner`: the service's uid and gid, when it runs as another user.
    pub fn new(spec: FileSpec, owner: Option<(u32, u32)>) -> LogFile {
        LogFile {
            spec,
            owner,
            file: None,
            size: 0,
            failing: false,
        }
    }

    /// Appends rendered lines, rotating first when they would not fit.
    pub fn write(&mut self, bytes: &[u8]) {
        let result = self.try_write(bytes);
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    warn!(
                        "log file {}: {e}; lines for it are dropped until it works again",
                        self.spec.path.display()
                    );
                }
                self.failing = true;
                self.file = None;
            }
        }
    }

    /// Writes whole lines, as many as fit before the size limit at a
    /// time, rotating in between.
    fn try_write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.file.is_none() {
                self.open()?;
            }
            let room = self.spec.max_size.saturating_sub(self.size) as usize;
            let take = fitting_lines(bytes, room);
            if take == 0 {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                // A single line longer than max_size: write it whole
                // rather than split it.
                let end = bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| p + 1);
                self.append(bytes.get(..end).unwrap_or_default())?;
                bytes = bytes.get(end..).unwrap_or_default();
                continue;
            }
            self.append(bytes.get(..take).unwrap_or_default())?;
            bytes = bytes.get(take..).unwrap_or_default();
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(f) = &mut self.file {
            f.write_all(bytes)?;
            self.size += bytes.len() as u64;
        }
        Ok(())
    }

    fn open(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.spec.path.parent() {
            create_dirs(dir, self.owner)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(&self.spec.path)?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// current.(keep-1) -> current.keep, ..., current -> current.1.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let path = &self.spec.path;
        if self.spec.keep == 0 {
            return std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(numbered(path, self.spec.keep));
        for n in (1..self.spec.keep).rev() {
            let from = numbered(path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(path, n + 1))?;
            }
        }
        std::fs::rename(path, numbered(path, 1))
    }
}

/// How many bytes of `bytes` are whole lines that fit in `room`.
fn fitting_lines(bytes: &[u8], room: usize) -> usize {
    let window = bytes.get(..room.min(bytes.len())).unwrap_or_default();
    if window.len() == bytes.len() {
        return bytes.len();
    }
    window
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1)
}

/// `current.N`
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// mkdir -p, giving every directory it creates to `owner`.
fn create_dirs(dir: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, owner)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = std::env::temp_dir().join(format!("corral-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/current");
        let mut f = LogFile::new(
            FileSpec {
                path: path.clone(),
                max_size: 10,
                keep: 2,
            },
            None,
        );
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            f.write(line.as_bytes());
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&numbered(&path, 1)), "eeee\nffff\n");
        assert_eq!(read(&numbered(&path, 2)), "cccc\ndddd\n");
        assert!(!numbered(&path, 3).exists(), "only `keep` rotated files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
