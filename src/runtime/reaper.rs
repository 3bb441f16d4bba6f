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

/// Collects every exited child without blocking: all of them, since
/// SIGCHLDs coalesce. Called after a wakeup that read SIGCHLD (and once
/// after the first, for zombies older than corral's signalfd).
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
        .filter(|&pid| proc_stat(pid).is_some_and(|st| st.ppid == me))
        .collect()
}

/// The fields of /proc/PID/stat that corral uses (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Start time in clock ticks after boot (field 22).
    pub start: u64,
}

/// `None` when the process is gone (a zombie still has its entry).
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after
    // the last ')', with the state (field 3) first.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start: field(22)?.parse().ok()?,
    })
}

/// The real uid of `pid` (/proc/PID/status).
pub fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `pid`, named by a service's pidfile, may be adopted as that
/// service's daemon: a child of corral (so waitpid reports it), from this
/// launch (in the launcher's session or process group, or started after
/// the launcher: a daemon that called setsid), and, when the service runs
/// as a user, running as that user. A service can thus never make corral
/// supervise, and later kill, a process that is not its own.
pub fn adoptable(pid: i32, launcher: Option<(i32, u64)>, uid: Option<u32>) -> Result<(), String> {
    let st = proc_stat(pid).ok_or_else(|| format!("pid {pid} does not exist"))?;
    if st.ppid != getpid().as_raw() {
        return Err(format!(
            "pid {pid} is not a child of corral (its parent still lives); \
             corral supervises only processes it can reap"
        ));
    }
    if let Some((lpid, lstart)) = launcher
        && st.session != lpid
        && st.pgrp != lpid
        && st.start < lstart
    {
        return Err(format!(
            "pid {pid} is older than this service's launcher: not a process of this start"
        ));
    }
    if let Some(want) = uid {
        let has = uid_of(pid);
        if has != Some(want) {
            return Err(format!(
                "pid {pid} runs as uid {}, not as the service's uid {want}",
                has.map_or("?".into(), |u| u.to_string())
            ));
        }
    }
    Ok(())
}
