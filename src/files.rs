//! Reading files that someone else may control: a service's pidfile (in a
//! directory the service owns), service files (maybe a FIFO or a device by
//! mistake). Opens never block (O_NONBLOCK: a FIFO without a writer does
//! not hold PID 1), only regular files are read, and never more than a
//! limit, so /dev/zero cannot fill corral's memory.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::libc;

/// Whether the last component of a path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Followed (a ConfigMap mount makes every file a link).
    Follow,
    /// Refused: the link could point anywhere its owner likes.
    Refuse,
}

/// Reads a regular file of at most `limit` bytes without blocking.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if links == Links::Refuse => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link, which corral does not follow here",
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        ));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    // Room for the file as it is now and the end-of-file read after it:
    // two reads for a service file. From empty, std's read_to_end probes
    // with 32-byte reads first (three reads for a 60-byte file).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().saturating_add(1)).unwrap_or(0));
    // The size can change under us: read one byte past the limit to know.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is larger than {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_devices_links_and_large_files() {
        let dir = std::env::temp_dir().join(format!("corral-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fifo, 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_regular(&zero, 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("device"), "{err}");
        let err = read_regular(&zero, 100, Links::Refuse).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let big = dir.join("big");
        std::fs::write(&big, [b'x'; 101]).unwrap();
        let err = read_regular(&big, 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("larger than 100"), "{err}");
        assert_eq!(read_regular(&big, 101, Links::Refuse).unwrap().len(), 101);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
