//! Starting processes. Everything is resolved before fork (argv, env, ids,
//! groups: see `config::model`); between fork and exec only
//! async-signal-safe calls run: setsid, setpgid, tcsetpgrp, setgroups,
//! setgid, setuid, fcntl, signal, sigprocmask.
//!
//! Descriptors: everything corral opens is close-on-exec, and the
//! descriptors corral inherited are marked close-on-exec at startup, so a
//! service gets exactly 0, 1 and 2. The main command gets the inherited ones
//! back (socket activation passes through, as with tini).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::libc;

use crate::config::ServiceSpec;

/// Marks every inherited descriptor above 2 close-on-exec and returns them,
/// so that only the main command gets them back. Must run before corral
/// opens anything of its own.
pub fn claim_inherited_fds() -> Vec<RawFd> {
    let candidates: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        // No /proc (yet): probe the usual range instead.
        Err(_) => (3..1024).collect(),
    };
    let mut fds = Vec::new();
    for fd in candidates.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: fcntl on a plain integer has no memory effects; a closed
        // descriptor (such as the read_dir one, gone by now) fails EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 {
            unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
            fds.push(fd);
        }
    }
    fds
}

/// What a service process gets beyond its definition.
#[derive(Default)]
pub struct Extras {
    /// Added to the environment (NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// A descriptor to place at a fixed number (the s6 readiness fd).
    pub fd: Option<(OwnedFd, RawFd)>,
}

/// Starts a service in its own session (so its own process group, without
/// a controlling terminal), as its user, with stdin on /dev/null and
/// stdout/stderr on the given pipes (or corral's own, for `inherit`).
pub fn spawn_service(
    spec: &ServiceSpec,
    stdout: Stdio,
    stderr: Stdio,
    extras: Extras,
) -> io::Result<i32> {
    spawn_as(spec, &spec.argv, stdout, stderr, extras)
}

/// Runs `argv` the way `spec`'s service runs: same user, groups,
/// environment and working directory, in a session of its own. Used for
/// the service itself and for its exec checks.
pub fn spawn_as(
    spec: &ServiceSpec,
    argv: &[String],
    stdout: Stdio,
    stderr: Stdio,
    extras: Extras,
) -> io::Result<i32> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    let ids = spec.credentials.as_ref().map(|c| {
        if let Some(home) = &c.home {
            cmd.env("HOME", home);
        }
        if let Some(name) = &c.user_name {
            cmd.env("USER", name).env("LOGNAME", name);
        }
        let groups: Vec<libc::gid_t> = c.groups.clone();
        (c.uid, c.gid, groups)
    });
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.envs(extras.env.iter().map(|(k, v)| (k, v)));
    let placed = extras
        .fd
        .as_ref()
        .map(|(fd, target)| (fd.as_raw_fd(), *target));
    // std's spawn opens a close-on-exec pipe to report exec errors; if it
    // got the number the readiness fd must take, the dup2 below would
    // replace it. Holding that number ourselves (a close-on-exec duplicate,
    // dropped after the spawn) keeps it out of std's reach.
    let _holder = placed.and_then(|(fd, target)| hold_fd_number(fd, target));
    // SAFETY: the closure only makes async-signal-safe system calls on data
    // prepared before fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setsid())?;
            if let Some((uid, gid, groups)) = &ids {
                // Order matters: groups and gid while still privileged,
                // uid last (setuid(2)).
                check(libc::setgroups(groups.len(), groups.as_ptr()))?;
                check(libc::setgid(*gid))?;
                if let Some(uid) = uid {
                    check(libc::setuid(*uid))?;
                }
            }
            if let Some((fd, target)) = placed {
                if fd == target {
                    // dup2 onto itself keeps close-on-exec: clear it.
                    check(libc::fcntl(fd, libc::F_SETFD, 0))?;
                } else {
                    check(libc::dup2(fd, target))?;
                }
            }
            reset_signals();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot execute {program}: {e}")))?;
    Ok(child.id() as i32)
}

/// Occupies descriptor number `target` with a close-on-exec duplicate of
/// `fd` if it is free, so nothing else opens it until the guard drops.
fn hold_fd_number(fd: RawFd, target: RawFd) -> Option<OwnedFd> {
    // SAFETY: probing and duplicating plain descriptor numbers; the new
    // descriptor is owned by the returned OwnedFd.
    unsafe {
        if fd == target || libc::fcntl(target, libc::F_GETFD) >= 0 {
            return None;
        }
        let got = libc::dup3(fd, target, libc::O_CLOEXEC);
        (got == target).then(|| OwnedFd::from_raw_fd(got))
    }
}

/// Why the main command could not start, with the shell's exit code.
#[derive(Debug)]
pub struct MainSpawnError {
    pub code: i32,
    pub message: String,
}

/// Starts the main command with corral's own stdio, in its own process
/// group which becomes the terminal's foreground group when stdin is a
/// terminal, so Ctrl-C reaches it directly (as tini does).
pub fn spawn_main(argv: &[String], inherited: &[RawFd]) -> Result<i32, MainSpawnError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(MainSpawnError {
            code: 127,
            message: "empty command".into(),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    let inherited = inherited.to_vec();
    // SAFETY: as in spawn_service; only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setpgid(0, 0))?;
            if libc::isatty(0) == 1 {
                // tcsetpgrp from a background group raises SIGTTOU.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                // Fails harmlessly when the terminal is not ours.
                libc::tcsetpgrp(0, libc::getpid());
            }
            for &fd in &inherited {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            reset_signals();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id() as i32),
        // The shell's convention: 127 not found, 126 found but not runnable.
        Err(e) => Err(MainSpawnError {
            code: if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            },
            message: format!("cannot run {program}: {e}"),
        }),
    }
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Default dispositions and an empty mask: a child must not inherit
/// corral's blocked signals, the SIG_IGN of SIGPIPE that Rust sets, or
/// anything corral's own parent ignored.
fn reset_signals() {
    /// The kernel's `struct sigaction`; all zeros is SIG_DFL, no flags,
    /// empty mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction(2) and sigprocmask(2) are async-signal-safe and
    // only read the structures on this stack frame. The raw syscall,
    // unlike glibc's signal(), also resets 32 and 33, which glibc reserves
    // but an ignoring parent may have left SIG_IGN (they survive exec).
    unsafe {
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
