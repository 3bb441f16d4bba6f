//! What `svctl inspect` says about the container beside its services:
//! the images' metadata, and facts gathered once at boot (the host name,
//! corral's start, the main command, and how often this container's file
//! system has seen corral start, kept in a small state file).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{debug, warn};

use crate::config::metadata::{self, ImageMeta};
use crate::proto::Runtime as RuntimeFacts;

/// Where the start count lives unless `CORRAL_STATE_DIR` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/corral";

/// Gathered at boot; read by `inspect`.
pub struct Facts {
    pub images: Vec<ImageMeta>,
    started: jiff::Timestamp,
    started_mono: Instant,
    hostname: String,
    main: Option<Vec<String>>,
    /// From the state file: the first start this file system saw, and the
    /// starts so far (this one included). `None` when it cannot be kept.
    first_started: Option<jiff::Timestamp>,
    starts: Option<u64>,
}

impl Facts {
    /// Reads the metadata (warning about bad files, which are left out:
    /// `corral check` refuses them) and counts this start; with `files`
    /// false (tini mode) only what needs no file.
    pub fn gather(main: Option<Vec<String>>, files: bool) -> Facts {
        let (images, errors) = if files {
            metadata::load(&metadata::dir())
        } else {
            (Vec::new(), Vec::new())
        };
        for e in &errors {
            warn!("{e} (left out of svctl inspect; corral check refuses it)");
        }
        let started = jiff::Timestamp::now();
        let dir = std::env::var_os("CORRAL_STATE_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
        let counted = if files {
            count_start(&dir, started)
        } else {
            Err(std::io::Error::other("tini mode"))
        };
        let (first_started, starts) = match counted {
            Ok((first, n)) => (Some(first), Some(n)),
            Err(e) => {
                debug!(
                    "cannot keep the start count in {}: {e}; inspect shows none",
                    dir.display()
                );
                (None, None)
            }
        };
        Facts {
            images,
            started,
            started_mono: Instant::now(),
            hostname: nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_default(),
            main,
            first_started,
            starts,
        }
    }

    /// The runtime part of `inspect`, as of `now`.
    pub fn runtime(&self, now: Instant) -> RuntimeFacts {
        let utc = jiff::tz::TimeZone::UTC;
        RuntimeFacts {
            corral_version: env!("CARGO_PKG_VERSION").to_string(),
            corral_started: crate::config::schedule::rfc3339(self.started, &utc),
            uptime_ms: now.saturating_duration_since(self.started_mono).as_millis() as u64,
            hostname: self.hostname.clone(),
            main_command: self.main.clone(),
            first_started: self
                .first_started
                .map(|t| crate::config::schedule::rfc3339(t, &utc)),
            starts: self.starts,
        }
    }
}

/// Reads `DIR/starts` (`first=RFC3339`, `count=N`), counts this start and
/// writes it back (a new file, renamed over the old). Returns the first
/// start and the count.
fn count_start(dir: &Path, now: jiff::Timestamp) -> std::io::Result<(jiff::Timestamp, u64)> {
    let file = dir.join("starts");
    let old = crate::files::read_regular(&file, 4096, crate::files::Links::Refuse)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let field = |k: &str| {
        old.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::trim)
    };
    let first = field("first")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or(now);
    let count = field("count")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_add(1);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".starts.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&tmp)?;
    let utc = jiff::tz::TimeZone::UTC;
    // One write (writeln! on the file itself made five).
    let text = format!(
        "first={}\ncount={count}\n",
        crate::config::schedule::rfc3339(first, &utc)
    );
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, &file)?;
    Ok((first, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_counted_and_the_first_is_kept() {
        let dir = std::env::temp_dir().join(format!("corral-facts-{}", std::process::id()));
        let t1: jiff::Timestamp = "2026-11-01T08:00:00Z".parse().unwrap();
        let t2: jiff::Timestamp = "2026-12-02T09:00:00Z".parse().unwrap();
        assert_eq!(count_start(&dir, t1).unwrap(), (t1, 1));
        assert_eq!(count_start(&dir, t2).unwrap(), (t1, 2));
        assert_eq!(
            std::fs::read_to_string(dir.join("starts")).unwrap(),
            "first=2026-11-01T08:00:00+00:00\ncount=2\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
