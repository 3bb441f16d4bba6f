//! Signals as readable events: every catchable signal is blocked and read
//! from a signalfd(2) in the event loop, so there are no handlers, no
//! flags written from handler context and no EINTR races.
//!
//! Children must not inherit the blocked mask: `spawn` clears it between
//! fork and exec.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::debug;

/// Faults raised by corral's own code must keep their default action;
/// blocking them would turn a crash into a hang (signal(7)).
const SYNCHRONOUS: [Signal; 5] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSYS,
];

/// The signalfd and the mask it reads.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks every catchable signal in this (the only) thread and opens a
    /// non-blocking signalfd for them. Blocked job-control signals
    /// (SIGTSTP, SIGTTIN, SIGTTOU) can never stop corral.
    pub fn install() -> nix::Result<Signals> {
        let mut mask = SigSet::all();
        for s in SYNCHRONOUS {
            mask.remove(s);
        }
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// Reads what is pending with one read(2): up to BATCH siginfos. A
    /// second read would only return EAGAIN on the path every forwarded
    /// signal takes; anything beyond the batch keeps the (level-triggered)
    /// fd readable, so the loop comes back for it. Real-time signals have
    /// no `Signal` value in nix and are dropped with a debug message.
    pub fn read(&self) -> Batch {
        let mut buf = [0u8; BATCH * INFO];
        let len = nix::unistd::read(&self.fd, &mut buf).unwrap_or(0);
        Batch { buf, len, at: 0 }
    }
}

/// Standard signals coalesce, so more than this many at once is rare.
const BATCH: usize = 16;
/// The kernel's record size (struct signalfd_siginfo).
const INFO: usize = std::mem::size_of::<nix::libc::signalfd_siginfo>();
const _: () = assert!(INFO == 128, "signalfd(2) records are 128 bytes");

/// One read's signals, in the order the kernel gave them.
pub struct Batch {
    buf: [u8; BATCH * INFO],
    len: usize,
    at: usize,
}

impl Iterator for Batch {
    type Item = Signal;

    fn next(&mut self) -> Option<Signal> {
        let records = self.buf.get(..self.len).unwrap_or_default();
        while let Some(rec) = records.get(self.at..self.at + INFO) {
            self.at += INFO;
            // ssi_signo is the record's first field, a u32.
            let Some(&signo) = rec.first_chunk::<4>() else {
                continue;
            };
            let signo = u32::from_ne_bytes(signo);
            match Signal::try_from(signo as i32) {
                Ok(s) => return Some(s),
                Err(_) => debug!("ignoring signal {signo}"),
            }
        }
        None
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
