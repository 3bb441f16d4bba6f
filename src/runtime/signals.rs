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

    /// Drains every pending signal. Real-time signals have no `Signal`
    /// value in nix and are dropped with a debug message.
    pub fn read(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(s) => out.push(s),
                Err(_) => debug!("ignoring signal {}", info.ssi_signo),
            }
        }
        out
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
