//! The last resort: a panic in corral. As PID 1 its death would take the
//! container down with a SIGKILL to everything and no word why, so the
//! hook says what happened on stderr, gives every process SIGTERM and a
//! moment to exit, reaps, then kills the rest and exits with
//! `EXIT_PANIC` instead of aborting silently.

use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};

use super::reaper;

/// Exit code after an internal error (sysexits' EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;

/// How long processes get between SIGTERM and SIGKILL after a panic.
const GRACE: Duration = Duration::from_secs(2);

pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "corral: fatal: internal error: {info}\ncorral: stopping every process; please report this with the lines above"
        );
        reaper::signal_orphans(Signal::SIGTERM);
        // Signals and timers are gone with the event loop: poll briefly.
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Err(_) => break,
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(_) => {}
            }
        }
        reaper::signal_orphans(Signal::SIGKILL);
        std::process::exit(EXIT_PANIC);
    }));
}
