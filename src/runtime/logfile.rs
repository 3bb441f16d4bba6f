//! A service's log file with size-based rotation: `current` is renamed to
//! `current.1` (and `.1` to `.2`, ... up to `keep`) when the next line
//! would take it past `max_size`, then a new `current` is opened. No
//! logrotate, no cron, no SIGHUP.
//!
//! The directory usually belongs to the service (corral creates it for
//! the service's user), so the service may put anything there: a symlink
//! named `current` to a root-only file, a hard link, a FIFO, a directory
//! where a rotated file goes. corral runs as root and must not be steered
//! by that. So the directory is opened once and everything after is
//! relative to that descriptor: files are opened with O_NOFOLLOW, only a
//! regular file with one link owned by the service (or corral) is written,
//! renames are renameat within the directory, and only a file corral has
//! just created (O_EXCL) is chowned.
//!
//! Lines are written whole or not at all: a write cut short (disk full) is
//! truncated back to the last whole line, and lost lines are counted and
//! reported once when writing works again.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, ftruncate, unlinkat, write};
use tracing::{info, warn};

use crate::logs::FileSpec;
use crate::logs::lines::count_lines;

pub struct LogFile {
    spec: FileSpec,
    owner: Option<(u32, u32)>,
    /// The directory, opened once (a service that renames it or swaps in
    /// a link cannot move corral's writes elsewhere).
    dir: Option<OwnedFd>,
    file: Option<File>,
    size: u64,
    /// Lines lost since writing began to fail; `Some` while failing.
    failing: Option<u64>,
    /// Lines this file never got, since start.
    pub lost: u64,
    /// A rotation failed: not tried again until the file reaches this size.
    rotate_after: u64,
}

impl LogFile {
    /// `owner`: the service's uid and gid, when it runs as another user.
    pub fn new(spec: FileSpec, owner: Option<(u32, u32)>) -> LogFile {
        LogFile {
            spec,
            owner,
            dir: None,
            file: None,
            size: 0,
            failing: None,
            lost: 0,
            rotate_after: 0,
        }
    }

    pub fn spec(&self) -> &FileSpec {
        &self.spec
    }

    /// Appends rendered lines, rotating first when they would not fit.
    /// What cannot be written is dropped whole lines at a time and counted.
    pub fn write(&mut self, bytes: &[u8]) {
        match self.try_write(bytes) {
            Ok(()) => {
                if let Some(lost) = self.failing.take() {
                    info!(
                        "log file {}: writing again; {lost} line(s) were lost while it failed",
                        self.spec.path.display()
                    );
                }
            }
            Err((e, rest)) => {
                let lines = count_lines(rest);
                self.lost += lines;
                match &mut self.failing {
                    Some(lost) => *lost += lines,
                    None => {
                        warn!(
                            "log file {}: {e}; its lines are dropped and counted until writing works again",
                            self.spec.path.display()
                        );
                        self.failing = Some(lines);
                    }
                }
                // Disk full: keep the file and retry with the next lines;
                // anything else: open afresh next time.
                if e.raw_os_error() != Some(nix::libc::ENOSPC) {
                    self.file = None;
                }
            }
        }
    }

    /// Writes whole lines, as many as fit before the size limit at a
    /// time, rotating in between. On error, returns it with the bytes
    /// that were not written.
    fn try_write<'b>(&mut self, mut bytes: &'b [u8]) -> Result<(), (io::Error, &'b [u8])> {
        while !bytes.is_empty() {
            if self.file.is_none() {
                self.open().map_err(|e| (e, bytes))?;
            }
            let room = self.spec.max_size.saturating_sub(self.size) as usize;
            let mut take = fitting_lines(bytes, room);
            if take == 0 && self.size > 0 && self.size >= self.rotate_after {
                match self.rotate() {
                    Ok(()) => continue,
                    Err(e) => {
                        // Keep appending to the file we have rather than
                        // lose lines; try again a max_size later.
                        warn!(
                            "log file {}: cannot rotate ({e}); appending past max_size",
                            self.spec.path.display()
                        );
                        self.rotate_after = self.size + self.spec.max_size;
                    }
                }
            }
            if take == 0 {
                // A line longer than max_size, or no rotation possible:
                // write the next line whole rather than split it.
                take = bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| p + 1);
            }
            let (chunk, rest) = bytes.split_at(take.min(bytes.len()));
            self.append(chunk).map_err(|e| (e, bytes))?;
            bytes = rest;
        }
        Ok(())
    }

    /// Writes `bytes` whole, or truncates the file back to where it was.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        let mut done = 0;
        while done < bytes.len() {
            match write(f, bytes.get(done..).unwrap_or_default()) {
                Ok(0) => return self.undo(done, io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(e) => return self.undo(done, e.into()),
            }
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// A write stopped after `done` bytes: cut them off again so the file
    /// ends in a whole line, and return `error`.
    fn undo(&mut self, done: usize, error: io::Error) -> io::Result<()> {
        if done > 0
            && let Some(f) = &self.file
        {
            let end = f.metadata().map_or(0, |m| m.len());
            let _ = ftruncate(f, end.saturating_sub(done as u64) as i64);
        }
        Err(error)
    }

    fn open(&mut self) -> io::Result<()> {
        if self.dir.as_ref().is_none_or(removed) {
            let dir = self.spec.path.parent().unwrap_or(Path::new("/"));
            self.dir = Some(open_dirs(dir, self.owner)?);
        }
        let Some(dir) = &self.dir else {
            return Err(io::Error::other("no directory"));
        };
        let name = file_name(&self.spec.path)?;
        let file = open_in(dir, &name, self.owner)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        self.rotate_after = 0;
        Ok(())
    }

    /// current.(keep-1) -> current.keep, ..., current -> current.1, all
    /// within the directory (rename(2) never follows a link).
    fn rotate(&mut self) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Err(io::Error::other("no directory"));
        };
        let name = file_name(&self.spec.path)?;
        let numbered = |n: u32| {
            let mut s = name.clone();
            s.push(format!(".{n}"));
            s
        };
        if self.spec.keep == 0 {
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        } else {
            let _ = unlinkat(
                dir,
                numbered(self.spec.keep).as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            );
            for n in (1..self.spec.keep).rev() {
                match renameat(
                    dir,
                    numbered(n).as_os_str(),
                    dir,
                    numbered(n + 1).as_os_str(),
                ) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            renameat(dir, name.as_os_str(), dir, numbered(1).as_os_str())?;
        }
        self.file = None;
        self.open()
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

fn file_name(path: &Path) -> io::Result<OsString> {
    path.file_name()
        .map(|n| n.to_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))
}

/// The directory was deleted since it was opened (its link count is 0).
fn removed(dir: &OwnedFd) -> bool {
    nix::sys::stat::fstat(dir).is_ok_and(|st| st.st_nlink == 0)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

/// mkdir -p, returning the directory opened. The path is walked one
/// component at a time from `/`: a symbolic link is followed only where it
/// sits in a directory of root's or corral's that nobody else may write
/// (`/var/run -> /run`), never in one another user owns or may write, such
/// as `/tmp` (a service could point its log directory at `/etc` that way). Directories corral creates are made and opened
/// relative to their parent and given to `owner`.
fn open_dirs(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
    let own = nix::unistd::geteuid().as_raw();
    let follow = DIR_FLAGS.difference(OFlag::O_NOFOLLOW);
    let mut fd = nix::fcntl::open("/", follow, Mode::empty())?;
    for part in dir.components() {
        let name = match part {
            Component::Normal(name) => name,
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => std::ffi::OsStr::new(".."),
            Component::Prefix(_) => return Err(io::Error::other("not a Unix path")),
        };
        let parent = nix::sys::stat::fstat(&fd)?;
        let parent_uid = parent.st_uid;
        // Root's (or corral's) and writable by nobody else: not /tmp.
        let trusted = (parent_uid == 0 || parent_uid == own) && parent.st_mode & 0o022 == 0;
        let flags = if trusted { follow } else { DIR_FLAGS };
        let next = match openat(&fd, name, flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT) => {
                let created = match mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => true,
                    Err(Errno::EEXIST) => false,
                    Err(e) => return Err(e.into()),
                };
                let next = openat(&fd, name, DIR_FLAGS, Mode::empty())?;
                if created && let Some((uid, gid)) = owner {
                    fchown(&next, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
                }
                next
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) if !trusted => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "`{}` is a symbolic link in a directory others may write (uid {parent_uid}, mode {:o}); corral does not follow it there",
                        Path::new(name).display(),
                        parent.st_mode & 0o7777
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        fd = next;
    }
    Ok(fd)
}

/// Opens `name` in `dir` for appending: created (and given to `owner`) if
/// missing; if it exists, only a regular file with a single link, owned by
/// `owner` or by corral, and never through a symbolic link.
fn open_in(dir: &OwnedFd, name: &OsString, owner: Option<(u32, u32)>) -> io::Result<File> {
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o640);
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` {why}; corral writes only a regular file of its own there (remove it)",
                Path::new(name).display()
            ),
        )
    };
    match openat(
        dir,
        name.as_os_str(),
        flags | OFlag::O_CREAT | OFlag::O_EXCL,
        mode,
    ) {
        Ok(fd) => {
            if let Some((uid, gid)) = owner {
                fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
            }
            return Ok(File::from(fd));
        }
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = match openat(dir, name.as_os_str(), flags, mode) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => return Err(refuse("is a symbolic link")),
        // A FIFO nobody reads, a device without a driver.
        Err(Errno::ENXIO | Errno::ENODEV) => return Err(refuse("is not a regular file")),
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    let meta = file.metadata()?;
    let own = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_file() {
        return Err(refuse("is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refuse("has other hard links"));
    }
    if meta.uid() != own && owner.is_none_or(|(uid, _)| meta.uid() != uid) {
        return Err(refuse(&format!("belongs to uid {}", meta.uid())));
    }
    // O_NONBLOCK was only for the open; a regular file never blocks.
    let _ = nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_APPEND));
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path, max_size: u64, keep: u32) -> FileSpec {
        FileSpec {
            path: path.to_path_buf(),
            max_size,
            keep,
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("corral-logfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = temp("rotate");
        let path = dir.join("sub/current");
        let mut f = LogFile::new(spec(&path, 10, 2), None);
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
        assert_eq!(f.lost, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_current_is_refused_and_its_target_untouched() {
        let dir = temp("link");
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let path = dir.join("current");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut f = LogFile::new(spec(&path, 100, 2), None);
        f.write(b"one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        assert_eq!(f.lost, 2, "both lines counted as lost");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_directory_in_a_users_directory_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            return; // needs chown; the integration tests run as root
        }
        let dir = temp("dirlink");
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let theirs = dir.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, theirs.join("logs")).unwrap();
        let mut f = LogFile::new(spec(&theirs.join("logs/current"), 100, 1), None);
        f.write(b"one\n");
        assert_eq!(f.lost, 1);
        assert!(!elsewhere.join("current").exists(), "followed the link");
        // A link in a directory of root's (0755) is followed as usual.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("mine")).unwrap();
        let mut f = LogFile::new(spec(&dir.join("mine/current"), 100, 1), None);
        f.write(b"two\n");
        assert_eq!(
            std::fs::read_to_string(elsewhere.join("current")).unwrap(),
            "two\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_rotation_keeps_appending() {
        let dir = temp("norotate");
        std::fs::create_dir_all(dir.join("current.1/x")).unwrap();
        let path = dir.join("current");
        let mut f = LogFile::new(spec(&path, 10, 1), None);
        for line in ["aaaa\n", "bbbb\n", "cccc\n"] {
            f.write(line.as_bytes());
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "aaaa\nbbbb\ncccc\n"
        );
        assert_eq!(f.lost, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
