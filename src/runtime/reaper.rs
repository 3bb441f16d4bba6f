//! PID 1 duties: reaping every child (services, the main command and the
//! orphans the kernel reparents to us), becoming a child subreaper when not
//! PID 1, and signalling what is left at shutdown.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};
use tracing::{debug, warn};

use crate::supervisor::ExitStatus;

/// What one drain of waitpid found.
#[derive(Debug, Default)]
pub struct Reaped {
    pub exits: Vec<(i32, ExitStatus)>,
    /// waitpid said ECHILD: no child is left at all.
    pub no_children: bool,
}

/// Collects every exited child without blocking. Called on every wakeup,
/// not only on SIGCHLD: signals coalesce, and a child may exit between a
/// read of the signalfd and this call.
pub fn drain() -> Reaped {
    let mut r = Reaped::default();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                r.exits.push((pid.as_raw(), ExitStatus::Code(code)))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                r.exits.push((pid.as_raw(), ExitStatus::Signaled(sig)))
            }
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => {
                r.no_children = true;
                break;
            }
            Err(e) => {
                warn!("waitpid: {e}");
                break;
            }
        }
    }
    r
}

/// Whether corral is the init of its PID namespace.
pub fn is_pid1() -> bool {
    getpid().as_raw() == 1
}

/// When not PID 1 (on a host, under a debugger), orphans of our services
/// would go to the real init; PR_SET_CHILD_SUBREAPER brings them to us so
/// we reap and stop them just the same (prctl(2)).
pub fn become_subreaper() {
    if !is_pid1()
        && let Err(e) = nix::sys::prctl::set_child_subreaper(true)
    {
        warn!("cannot become a child subreaper ({e}): orphans will go to the host's init");
    }
}

/// Sends `signal` to everything left. As PID 1 that is every process in the
/// namespace (kill(-1) spares only us); otherwise only our own children,
/// never the host's processes.
pub fn signal_orphans(signal: Signal) {
    if is_pid1() {
        match kill(Pid::from_raw(-1), signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => warn!("kill(-1, {}): {e}", signal.as_str()),
        }
        return;
    }
    for pid in own_children() {
        debug!("sending {} to leftover child {pid}", signal.as_str());
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Our direct children, from /proc/<pid>/stat.
fn own_children() -> Vec<i32> {
    let me = getpid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .collect()
}

/// Whether `pid` is a child of corral (so waitpid will report it).
pub fn is_own_child(pid: i32) -> bool {
    parent_of(pid) == Some(getpid().as_raw())
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after
    // the last ')'. Then: state, ppid.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
