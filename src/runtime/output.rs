//! Service output: one pipe per stream per process; every complete line is
//! written to corral's own stdout or stderr as `name | line`, with the
//! names padded to one width. Lines are written whole, one relay at a
//! time, so lines of different services never interleave.
//!
//! All pipe handling lives here so that richer logging (formats, rings,
//! files) can replace the sink without touching the event loop.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::Epoll;
use nix::unistd::{pipe2, read, write};

/// Longest line relayed as one; longer ones are cut into pieces of this
/// size so memory per pipe stays bounded.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads per wakeup and pipe before the loop serves others; epoll is
/// level-triggered, so what is left is read on the next turn.
const READS_PER_TURN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The read end of one service pipe and its unfinished line.
struct Relay {
    name: String,
    stream: Stream,
    fd: OwnedFd,
    partial: Vec<u8>,
}

/// Every open service pipe, keyed by an id the event loop uses as token.
pub struct Output {
    width: usize,
    relays: HashMap<u64, Relay>,
    next_id: u64,
}

impl Output {
    /// `names`: all service names, to align the prefixes.
    pub fn new<'a>(names: impl Iterator<Item = &'a str>) -> Output {
        Output {
            width: names.map(str::len).max().unwrap_or(0),
            relays: HashMap::new(),
            next_id: 0,
        }
    }

    /// Opens a pipe for `name`'s `stream`. Returns the relay id and the
    /// write end for the child; the read end is non-blocking.
    pub fn open(&mut self, name: &str, stream: Stream) -> io::Result<(u64, OwnedFd)> {
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC)?;
        nix::fcntl::fcntl(&rd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let id = self.next_id;
        self.next_id += 1;
        self.relays.insert(
            id,
            Relay {
                name: name.to_string(),
                stream,
                fd: rd,
                partial: Vec::new(),
            },
        );
        Ok((id, wr))
    }

    /// The read end, for the event loop to watch.
    pub fn fd(&self, id: u64) -> Option<BorrowedFd<'_>> {
        self.relays.get(&id).map(|r| r.fd.as_fd())
    }

    /// Every open relay.
    pub fn ids(&self) -> Vec<u64> {
        self.relays.keys().copied().collect()
    }

    /// Forgets a relay without reading it (its spawn failed).
    pub fn discard(&mut self, id: u64) {
        self.relays.remove(&id);
    }

    /// Reads what the pipe has and relays complete lines. Returns false
    /// once the pipe is closed (every writer gone) and the relay removed;
    /// its last unterminated line is flushed then.
    pub fn on_readable(&mut self, id: u64, epoll: &Epoll) -> bool {
        let Some(relay) = self.relays.get_mut(&id) else {
            return false;
        };
        let mut buf = [0u8; 64 * 1024];
        let mut out = Vec::new();
        let mut open = true;
        for _ in 0..READS_PER_TURN {
            match read(&relay.fd, &mut buf) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => split_lines(
                    relay,
                    buf.get(..n).unwrap_or_default(),
                    self.width,
                    &mut out,
                ),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        if !open && !relay.partial.is_empty() {
            let rest = std::mem::take(&mut relay.partial);
            push_line(&relay.name, self.width, &rest, &mut out);
        }
        let stream = relay.stream;
        if !out.is_empty() {
            sink_write(stream, &out);
        }
        if !open && let Some(relay) = self.relays.remove(&id) {
            let _ = epoll.delete(&relay.fd);
        }
        open
    }
}

/// Appends `data` to the relay's partial line and moves every complete
/// line (or MAX_LINE piece) into `out`, prefixed.
fn split_lines(relay: &mut Relay, data: &[u8], width: usize, out: &mut Vec<u8>) {
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let (line, tail) = rest.split_at(pos);
        if relay.partial.is_empty() {
            push_line(&relay.name, width, line, out);
        } else {
            relay.partial.extend_from_slice(line);
            let whole = std::mem::take(&mut relay.partial);
            push_line(&relay.name, width, &whole, out);
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    relay.partial.extend_from_slice(rest);
    while relay.partial.len() >= MAX_LINE {
        let tail = relay.partial.split_off(MAX_LINE);
        let piece = std::mem::replace(&mut relay.partial, tail);
        push_line(&relay.name, width, &piece, out);
    }
}

/// `name | line\n`, the name padded to `width`.
fn push_line(name: &str, width: usize, line: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(name.as_bytes());
    out.resize(out.len() + width.saturating_sub(name.len()), b' ');
    out.extend_from_slice(b" | ");
    out.extend_from_slice(line);
    out.push(b'\n');
}

/// Writes all of `bytes` to corral's stdout or stderr. If the descriptor
/// is non-blocking and full, waits for it: output is never dropped. A
/// closed sink (EPIPE) discards.
fn sink_write(stream: Stream, mut bytes: &[u8]) {
    // Raw writes, not io::stdout(): its line buffer would split a batch
    // into several writes.
    let stdout = io::stdout();
    let stderr = io::stderr();
    let target = match stream {
        Stream::Stdout => stdout.as_fd(),
        Stream::Stderr => stderr.as_fd(),
    };
    while !bytes.is_empty() {
        match write(target, bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(target, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> Relay {
        let (rd, _wr) = pipe2(OFlag::O_CLOEXEC).unwrap();
        Relay {
            name: "db".into(),
            stream: Stream::Stdout,
            fd: rd,
            partial: Vec::new(),
        }
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_prefixed() {
        let mut r = relay();
        let mut out = Vec::new();
        split_lines(&mut r, b"hel", 5, &mut out);
        assert!(out.is_empty());
        split_lines(&mut r, b"lo\nwor", 5, &mut out);
        split_lines(&mut r, b"ld\n\n", 5, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "db    | hello\ndb    | world\ndb    | \n"
        );
        assert!(r.partial.is_empty());
    }

    #[test]
    fn overlong_lines_are_cut() {
        let mut r = relay();
        let mut out = Vec::new();
        let data = vec![b'x'; MAX_LINE + 10];
        split_lines(&mut r, &data, 2, &mut out);
        assert_eq!(out.len(), "db | ".len() + MAX_LINE + 1);
        assert_eq!(r.partial.len(), 10);
    }
}
