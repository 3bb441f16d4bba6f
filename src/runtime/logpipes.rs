//! The pipes between runit services and their `log/run` loggers. corral
//! keeps both ends of each open for as long as either service exists:
//! the logger never sees end-of-file when the service restarts, and the
//! service never gets EPIPE when the logger restarts; lines written
//! meanwhile wait in the pipe (up to its size, then the service waits on
//! its writes, as under runsv). corral never reads or writes them.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;

/// What a pipe is asked to hold while its logger restarts.
const PIPE_SIZE: i32 = 1024 * 1024;

#[derive(Default)]
pub struct LogPipes {
    /// By the service that writes: (read end, write end).
    pipes: HashMap<String, (OwnedFd, OwnedFd)>,
}

impl LogPipes {
    fn pipe(&mut self, key: &str) -> io::Result<&(OwnedFd, OwnedFd)> {
        if !self.pipes.contains_key(key) {
            let (rd, wr) = pipe2(OFlag::O_CLOEXEC)?;
            let (rd, wr) = (super::spawn::park(rd), super::spawn::park(wr));
            // Best effort: above /proc/sys/fs/pipe-max-size for a non-root
            // corral, the default 64 KiB stays.
            let _ = fcntl(&wr, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
            self.pipes.insert(key.to_string(), (rd, wr));
        }
        self.pipes
            .get(key)
            .ok_or_else(|| io::Error::other("log pipe vanished"))
    }

    /// A descriptor of the write end of `key`'s pipe, for its service.
    pub fn writer(&mut self, key: &str) -> io::Result<OwnedFd> {
        self.pipe(key)?.1.try_clone()
    }

    /// A descriptor of the read end of `key`'s pipe, for its logger.
    pub fn reader(&mut self, key: &str) -> io::Result<OwnedFd> {
        self.pipe(key)?.0.try_clone()
    }

    /// Closes the pipes no service uses any more (after a reload).
    pub fn retain(&mut self, used: impl Fn(&str) -> bool) {
        self.pipes.retain(|k, _| used(k));
    }
}
