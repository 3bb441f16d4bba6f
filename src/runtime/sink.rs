//! corral's stdout and stderr as non-blocking sinks with a queue, so a
//! slow or stuck container log can never block the event loop.
//!
//! The descriptors 1 and 2 are shared with the main command and with
//! `inherit` services, so corral must not set O_NONBLOCK on them (that flag
//! lives in the shared open file description and would make their writes
//! fail with EAGAIN). Instead it opens its own description of the same pipe
//! or terminal through /proc/self/fd and makes only that non-blocking; a
//! socket gets MSG_DONTWAIT per send; a regular file never blocks.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{MsgFlags, send};
use nix::unistd::write;

/// How writes are kept from blocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Our own O_NONBLOCK description of a pipe or terminal.
    NonBlocking,
    /// A socket: send with MSG_DONTWAIT.
    Send,
    /// A regular file (or anything else): writes do not block for long.
    Blocking,
}

/// Bytes queued for the sink, with the service they came from (`None`:
/// corral itself), so the service's share can be credited once written.
struct Chunk {
    owner: Option<usize>,
    bytes: Vec<u8>,
}

/// One of corral's standard outputs.
pub struct Sink {
    fd: OwnedFd,
    mode: Mode,
    queue: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// EPOLLOUT is being watched.
    watching: bool,
    token: u64,
    /// The reader went away (EPIPE): discard from now on.
    broken: bool,
}

impl Sink {
    /// Opens a sink for standard descriptor `std_fd` (1 or 2).
    pub fn open(std_fd: RawFd, token: u64) -> std::io::Result<Sink> {
        // SAFETY: 1 and 2 stay open for corral's life.
        let borrowed = unsafe { BorrowedFd::borrow_raw(std_fd) };
        let meta = std::fs::metadata(format!("/proc/self/fd/{std_fd}"));
        let file_type = meta.as_ref().map(|m| m.file_type()).ok();
        let own = |mode| {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{std_fd}"))
                .map(|f| (OwnedFd::from(f), mode))
        };
        let (fd, mode) = match file_type {
            Some(t) if t.is_fifo() || t.is_char_device() => own(Mode::NonBlocking)
                .or_else(|_| borrowed.try_clone_to_owned().map(|fd| (fd, Mode::Blocking)))?,
            Some(t) if t.is_socket() => (borrowed.try_clone_to_owned()?, Mode::Send),
            _ => (borrowed.try_clone_to_owned()?, Mode::Blocking),
        };
        // The duplicate must not leak into children.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Sink {
            fd,
            mode,
            queue: VecDeque::new(),
            offset: 0,
            watching: false,
            token,
            broken: false,
        })
    }

    /// Queues bytes; `flush` writes them.
    pub fn push(&mut self, owner: Option<usize>, bytes: Vec<u8>) {
        if !self.broken && !bytes.is_empty() {
            self.queue.push_back(Chunk { owner, bytes });
        }
    }

    /// Writes what the sink takes without blocking. Calls `credit(owner,
    /// bytes)` for every chunk fully written (or discarded), and watches
    /// EPOLLOUT exactly while something is left.
    pub fn flush(&mut self, epoll: &Epoll, mut credit: impl FnMut(Option<usize>, usize)) {
        while let Some(front) = self.queue.front() {
            let rest = front.bytes.get(self.offset..).unwrap_or_default();
            let result = if self.broken {
                Ok(rest.len())
            } else {
                self.write_some(rest)
            };
            match result {
                Ok(n) if self.offset + n >= front.bytes.len() => {
                    self.offset = 0;
                    if let Some(done) = self.queue.pop_front() {
                        credit(done.owner, done.bytes.len());
                    }
                }
                Ok(n) => self.offset += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                // EPIPE and the like: nobody reads any more. Keep going
                // without blocking, and without losing the accounting.
                Err(_) => self.broken = true,
            }
        }
        let want = !self.queue.is_empty();
        if want != self.watching {
            let ok = if want {
                epoll
                    .add(&self.fd, EpollEvent::new(EpollFlags::EPOLLOUT, self.token))
                    .is_ok()
            } else {
                epoll.delete(&self.fd).is_ok()
            };
            // A descriptor epoll refuses (a regular file) is never full.
            self.watching = want && ok;
        }
    }

    fn write_some(&self, bytes: &[u8]) -> Result<usize, Errno> {
        match self.mode {
            Mode::NonBlocking | Mode::Blocking => write(&self.fd, bytes),
            Mode::Send => send(
                self.fd.as_raw_fd(),
                bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ),
        }
    }

    /// At exit: writes what is left, waiting for the reader at most
    /// `timeout` in all, so corral's last lines are not lost and a dead
    /// reader cannot hold corral forever.
    pub fn drain(&mut self, epoll: &Epoll, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.flush(epoll, |_, _| {});
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.queue.is_empty() || self.broken || left.is_zero() {
                return;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
}
