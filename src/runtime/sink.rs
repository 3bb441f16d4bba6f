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
use tracing::warn;

use crate::logs::Stream;
use crate::logs::lines::count_lines;
use crate::supervisor::ServiceId;

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

/// Who queued a chunk: a service and the stream its lines came from, or
/// Spare buffers a sink keeps, and the largest it keeps: a relay's batch
/// is at most its 64 KiB queue share plus one read's lines.
const SPARE_BUFFERS: usize = 4;
const SPARE_CAPACITY: usize = 512 * 1024;

/// `None` for corral itself.
pub type Owner = Option<(ServiceId, Stream)>;

/// Bytes queued for the sink, with their owner, so the owner's share can be
/// credited once they are written or dropped.
struct Chunk {
    owner: Owner,
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
    /// Written chunks' buffers, emptied, for the next batches: a relay
    /// renders into one instead of growing a new one per read, which with
    /// musl's allocator cost a fresh mapping and its page faults each time.
    spare: Vec<Vec<u8>>,
    /// A write error was logged; the next is not until a write succeeds.
    complained: bool,
    std_fd: RawFd,
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
            spare: Vec::new(),
            complained: false,
            std_fd,
        })
    }

    /// An empty buffer to render a batch into (a spare one when there is).
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps a written chunk's buffer for `buffer`, a few of them, none
    /// larger than a batch is: memory stays bounded.
    fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && bytes.capacity() <= SPARE_CAPACITY {
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// Queues bytes for `flush` to write; `false` (nothing queued) when the
    /// sink is broken and takes nothing any more.
    pub fn push(&mut self, owner: Owner, bytes: Vec<u8>) -> bool {
        if self.broken {
            return false;
        }
        if !bytes.is_empty() {
            self.queue.push_back(Chunk { owner, bytes });
        }
        true
    }

    /// Writes what the sink takes without blocking. Calls `credit(owner,
    /// bytes, lines_lost)` for every chunk written or dropped, and watches
    /// EPOLLOUT exactly while something is left.
    ///
    /// A write error drops the chunk it hit (its lines counted as lost)
    /// and the next chunk is tried as usual: a full disk may clear. EPIPE
    /// is for good: everything queued and to come is dropped and counted.
    pub fn flush(&mut self, epoll: &Epoll, mut credit: impl FnMut(Owner, usize, u64)) {
        while let Some(front) = self.queue.front() {
            let rest = front.bytes.get(self.offset..).unwrap_or_default();
            let result = if self.broken {
                Err(Errno::EPIPE)
            } else {
                self.write_some(rest)
            };
            match result {
                Ok(n) if self.offset + n >= front.bytes.len() => {
                    self.offset = 0;
                    self.complained = false;
                    if let Some(done) = self.queue.pop_front() {
                        credit(done.owner, done.bytes.len(), 0);
                        self.recycle(done.bytes);
                    }
                }
                Ok(n) => self.offset += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    let lost = count_lines(rest);
                    if !self.complained {
                        self.complained = true;
                        let name = if self.std_fd == 1 { "stdout" } else { "stderr" };
                        warn!(
                            "corral's {name}: {}; lines for it are dropped and counted (svctl status shows them)",
                            e.desc()
                        );
                    }
                    self.broken |= e == Errno::EPIPE;
                    self.offset = 0;
                    if let Some(done) = self.queue.pop_front() {
                        credit(done.owner, done.bytes.len(), lost);
                    }
                }
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
            self.flush(epoll, |_, _, _| {});
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
