//! Starting processes. Everything is resolved before the clone (argv, env,
//! PATH candidates, ids, groups: see `config::model`); between clone and
//! exec only raw system calls run: close_range, setsid, setgroups, setgid,
//! setuid, dup2, fcntl, chdir, rt_sigaction, rt_sigprocmask, execve.
//! Services and exec checks start with clone(CLONE_VM | CLONE_VFORK, and
//! CLONE_FILES: see below); the main command, once, with std's Command
//! (setpgid, tcsetpgrp).
//!
//! Descriptors: everything corral opens is close-on-exec, and the
//! descriptors corral inherited are marked close-on-exec at startup, so a
//! service gets exactly 0, 1 and 2. The main command gets the inherited ones
//! back (socket activation passes through, as with tini).
//!
//! The descriptor table: a clone without CLONE_FILES copies all of corral's
//! table (a reference per open descriptor) and exec then closes every one,
//! so starting N services cost O(N²), two or three relay pipes per service
//! already running. Instead the child shares corral's table and its first
//! call, close_range(CLOSE_RANGE_UNSHARE), makes it a copy of only the
//! descriptors below the child's own; the descriptors corral keeps are
//! parked above them (`park`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

use crate::config::{Credentials, ServiceSpec};

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

/// Where `park` puts the descriptors corral keeps for itself. Below it are
/// stdio, the few made at boot (epoll, signalfd, control socket) and the
/// ones just made for a child, which take the lowest free numbers.
const PARK_FLOOR: RawFd = 64;

/// Moves a descriptor corral keeps (a relay's read end, a readiness pipe,
/// a notify socket) to `PARK_FLOOR` or above, so a child's copy of the
/// table (see the module comment) stops below it. Call it before the
/// descriptor is added to the epoll set: epoll knows a descriptor by its
/// number. Where the limit leaves no room (EINVAL, EMFILE), the descriptor
/// stays where it is: starting gets slower, nothing else changes.
pub fn park(fd: OwnedFd) -> OwnedFd {
    if fd.as_raw_fd() >= PARK_FLOOR {
        return fd;
    }
    // The syscall itself: musl's fcntl() follows F_DUPFD_CLOEXEC with an
    // F_SETFD for kernels older than 2.6.24, a syscall more per relay
    // pipe (1,000 for 500 services).
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor (owned below) or fails.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_fcntl,
            fd.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            PARK_FLOOR,
        )
    };
    let Ok(moved) = RawFd::try_from(moved) else {
        return fd;
    };
    if moved < 0 {
        return fd;
    }
    // SAFETY: `moved` is a fresh descriptor nobody else owns; `fd` is
    // closed when it drops here.
    unsafe { OwnedFd::from_raw_fd(moved) }
}

/// A child's stdin: corral's own /dev/null, opened once and duplicated at
/// each start. An open walks the path and makes a new open file: it was 6%
/// of corral's time starting 500 services, a dup a fraction of that. The
/// children share the one open file, which for /dev/null holds nothing a
/// service could change for another (no offset, no data).
fn dev_null() -> io::Result<OwnedFd> {
    static KEPT: OnceLock<Option<OwnedFd>> = OnceLock::new();
    let kept = KEPT.get_or_init(|| File::open("/dev/null").ok().map(|f| park(f.into())));
    match kept {
        Some(fd) => fd.try_clone(),
        None => Ok(File::open("/dev/null")?.into()),
    }
}

/// Whether close_range(2) with CLOSE_RANGE_UNSHARE is there (Linux 5.9,
/// and let through by the container's seccomp profile). Probed once with
/// an empty range, which fails EINVAL after the system call and its flags
/// were accepted and changes nothing. `CORRAL_SHARE_FILES=0` turns it off,
/// for tools that cannot follow such a clone (valgrind, scripts/link-order).
fn can_unshare_files() -> bool {
    static PROBED: OnceLock<bool> = OnceLock::new();
    *PROBED.get_or_init(|| {
        if std::env::var_os("CORRAL_SHARE_FILES").is_some_and(|v| v == "0") {
            return false;
        }
        // SAFETY: an invalid range (first > last): no descriptor is touched.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                1 as libc::c_uint,
                0 as libc::c_uint,
                libc::CLOSE_RANGE_UNSHARE,
            )
        };
        ret < 0 && errno() == libc::EINVAL
    })
}

/// What a service process gets beyond its definition.
#[derive(Default)]
pub struct Extras {
    /// Added to the environment (NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// A descriptor to place at a fixed number (the s6 readiness fd).
    pub fd: Option<(OwnedFd, RawFd)>,
    /// Run as this identity instead of the service's (an action's own
    /// `user`/`group`).
    pub credentials: Option<Credentials>,
    /// Run as corral itself, in `/`: the prepare helper, which makes the
    /// service's directories (its working directory among them).
    pub as_corral: bool,
    /// Its stdin instead of /dev/null (a runit logger's pipe).
    pub stdin: Option<OwnedFd>,
}

/// Where a child's stdout or stderr goes: a descriptor of corral's (a
/// pipe), or corral's own (`inherit`).
pub enum Target {
    Inherit,
    Fd(OwnedFd),
}

impl Target {
    fn fd(&self) -> Option<&OwnedFd> {
        match self {
            Target::Inherit => None,
            Target::Fd(fd) => Some(fd),
        }
    }
}

/// Starts a service in its own session (so its own process group, without
/// a controlling terminal), as its user, with stdin on /dev/null and
/// stdout/stderr on the given pipes (or corral's own, for `inherit`).
pub fn spawn_service(
    spec: &ServiceSpec,
    stdout: Target,
    stderr: Target,
    extras: Extras,
) -> io::Result<i32> {
    spawn_as(spec, &spec.argv, stdout, stderr, extras)
}

/// Runs `argv` the way `spec`'s service runs: same user, groups,
/// environment and working directory, in a session of its own (or as
/// `extras.credentials`). Used for the service itself and for its helpers
/// (exec checks, actions: see `helpers`).
///
/// The child is made with clone(CLONE_VM | CLONE_VFORK), as posix_spawn
/// does: it borrows corral's memory instead of copying its page tables, and
/// corral resumes as soon as the child has exec'd (or failed to). A fork,
/// as std's Command with pre_exec does, costs a page-table copy and
/// copy-on-write faults for every spawn, which is most of the cost of
/// starting many services. Everything the child needs is prepared here;
/// the child itself makes only raw system calls on that data (see
/// `child_main`).
pub fn spawn_as(
    spec: &ServiceSpec,
    argv: &[String],
    stdout: Target,
    stderr: Target,
    extras: Extras,
) -> io::Result<i32> {
    let program = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let cannot = |e: io::Error| io::Error::new(e.kind(), format!("cannot execute {program}: {e}"));
    let credentials = if extras.as_corral {
        None
    } else {
        extras.credentials.as_ref().or(spec.credentials.as_ref())
    };
    let mut overrides: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = credentials {
        if let Some(home) = &c.home {
            overrides.push(("HOME", home));
        }
        if let Some(name) = &c.user_name {
            overrides.push(("USER", name));
            overrides.push(("LOGNAME", name));
        }
    }
    // Read at each start: a rotated secret applies on the next one.
    let from_files = file_environment(spec)?;
    overrides.extend(from_files.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    overrides.extend(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    overrides.extend(extras.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let base = inherited_env();
    let env = environment(base, &spec.env_unset, &overrides).map_err(cannot)?;
    let path = overrides
        .iter()
        .rev()
        .find(|(k, _)| *k == "PATH")
        .map(|(_, v)| *v)
        .or_else(|| {
            let path = base.iter().find(|v| v.name() == b"PATH")?;
            std::str::from_utf8(path.value()).ok()
        });
    let mut plan = Plan {
        candidates: candidates(program, path).map_err(cannot)?,
        argv: cstrings(argv.iter().map(String::as_str)).map_err(cannot)?,
        env,
        dir: match (&spec.working_dir, extras.as_corral) {
            (_, true) => Some(CString::new("/").map_err(|e| cannot(e.into()))?),
            (Some(d), false) => {
                Some(CString::new(d.as_os_str().as_bytes()).map_err(|e| cannot(e.into()))?)
            }
            (None, false) => None,
        },
        ids: credentials.map(|c| (c.uid, c.gid, c.groups.clone())),
        stdin: match extras.stdin {
            Some(fd) => fd,
            None => dev_null().map_err(cannot)?,
        },
        stdout,
        stderr,
        placed: extras.fd,
        ignored: ignored_signals(),
        no_new_privs: spec.no_new_privs,
        nofile: original_nofile(),
        keep_below: None,
    };
    if can_unshare_files() {
        let own = [
            Some(&plan.stdin),
            plan.stdout.fd(),
            plan.stderr.fd(),
            plan.placed.as_ref().map(|(fd, _)| fd),
        ];
        // A loop, not Iterator::max, which was a function of its own:
        // scripts/link-order cannot trace this path (valgrind does not
        // follow its clone), so it was never placed with the hot code and
        // every container start paged in a 64 KiB window for it.
        let mut highest = 2;
        for fd in own.iter().flatten() {
            highest = highest.max(fd.as_raw_fd());
        }
        plan.keep_below = Some(highest as libc::c_uint + 1);
    }
    launch(&plan).map_err(cannot)
}

/// The variables of `env_file` (in order) and then `env_from_file`. An
/// error names the file and what is wrong, never a value.
fn file_environment(spec: &ServiceSpec) -> io::Result<Vec<(String, String)>> {
    use crate::config::environ::{MAX_FILE, parse_env_file, secret_value};
    // As root, from paths a service's user may control (a volume).
    use crate::prepare::read_untrusted;
    let failed = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut vars = Vec::new();
    for f in &spec.env_files {
        let bytes = match read_untrusted(&f.path, MAX_FILE) {
            Ok(b) => b,
            Err(_)
                if f.optional
                    && std::fs::symlink_metadata(&f.path)
                        .is_err_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => return Err(failed(format!("env_file {}: {e}", f.path.display()))),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| failed(format!("env_file {}: not UTF-8 text", f.path.display())))?;
        let parsed = parse_env_file(&text)
            .map_err(|why| failed(format!("env_file {}: {why}", f.path.display())))?;
        vars.extend(parsed);
    }
    for (name, path) in &spec.env_from_files {
        let value = read_untrusted(path, MAX_FILE)
            .map_err(|e| failed(format!("env_from_file {name}: {}: {e}", path.display())))
            .and_then(|b| {
                secret_value(b).map_err(|why| {
                    failed(format!("env_from_file {name}: {} {why}", path.display()))
                })
            })?;
        vars.push((name.clone(), value));
    }
    Ok(vars)
}

/// Everything the child needs, prepared before the clone.
struct Plan {
    /// Paths to try in order (the PATH search, done here).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<Cow<'static, CStr>>,
    dir: Option<CString>,
    ids: Option<(Option<u32>, u32, Vec<libc::gid_t>)>,
    stdin: OwnedFd,
    stdout: Target,
    stderr: Target,
    placed: Option<(OwnedFd, RawFd)>,
    /// Signals corral ignores: SIG_IGN survives exec, so the child resets
    /// them (caught ones are reset by exec itself).
    ignored: &'static [libc::c_int],
    no_new_privs: bool,
    /// The descriptor limit corral was started with, for the child.
    nofile: Option<libc::rlimit>,
    /// With close_range(2): the child shares corral's table and unshares
    /// it keeping the descriptors below this, which holds all of its own.
    /// Without: the clone copies the whole table.
    keep_below: Option<libc::c_uint>,
}

/// The child's view of a `Plan`: raw pointers only, and where to report
/// an error (the child shares corral's memory until it execs).
struct Launch<'a> {
    plan: &'a Plan,
    candidates: Vec<*const libc::c_char>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    errno: AtomicI32,
}

/// Stack for the child between clone and exec. It runs a few system calls;
/// 64 KiB is far more than it needs.
const CHILD_STACK: usize = 64 * 1024;

fn launch(plan: &Plan) -> io::Result<i32> {
    let pointers = |v: &[CString]| {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let env = plan
        .env
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let launch = Launch {
        plan,
        candidates: plan.candidates.iter().map(|c| c.as_ptr()).collect(),
        argv: pointers(&plan.argv),
        envp: env,
        errno: AtomicI32::new(0),
    };
    // Not zeroed (that was a 64 KiB memset per start): the child writes
    // its stack before it reads it, as on any stack.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // The stack grows down: pass its 16-byte aligned top.
    let top = stack.as_mut_ptr().wrapping_add(CHILD_STACK);
    let top = top.wrapping_sub(top as usize % 16);
    // SAFETY: with CLONE_VFORK this thread is suspended until the child has
    // exec'd or exited, so `launch` and `stack` outlive every use the child
    // makes of them; the child makes only raw system calls (no allocation,
    // no locks) and never returns into Rust code of ours.
    let pid = unsafe {
        libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM
                | libc::CLONE_VFORK
                | libc::SIGCHLD
                | if plan.keep_below.is_some() {
                    libc::CLONE_FILES
                } else {
                    0
                },
            (&launch as *const Launch).cast_mut().cast(),
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let errno = launch.errno.load(Ordering::Acquire);
    if errno != 0 {
        // The child exited (127) without exec'ing: collect it here, so the
        // reaper never sees a pid nobody spawned.
        // SAFETY: waitpid on our own child's pid.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

/// The child: session, ids, descriptors, directory, signals, exec. Raw
/// system calls only: glibc's setuid and friends would signal every thread
/// of the process whose memory this child borrows (the setxid broadcast).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Launch` that `launch` keeps alive while the
    // parent is suspended; every call below is a raw system call on data
    // prepared before the clone.
    unsafe {
        let l = &*(arg as *const Launch);
        let p = l.plan;
        let fail = |errno: libc::c_int| -> ! {
            l.errno.store(errno.max(1), Ordering::Release);
            libc::syscall(libc::SYS_exit_group, 127);
            libc::_exit(127)
        };
        let sys = |ret: libc::c_long| {
            if ret < 0 {
                fail(errno())
            }
        };
        if let Some(keep) = p.keep_below {
            // First, before any descriptor changes: until this the table
            // is corral's own.
            sys(libc::syscall(
                libc::SYS_close_range,
                keep,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_UNSHARE,
            ));
        }
        sys(libc::syscall(libc::SYS_setsid));
        if let Some((uid, gid, groups)) = &p.ids {
            // Groups and gid while still privileged, uid last (setuid(2)).
            sys(libc::syscall(
                libc::SYS_setgroups,
                groups.len(),
                groups.as_ptr(),
            ));
            sys(libc::syscall(libc::SYS_setgid, *gid));
            if let Some(uid) = uid {
                sys(libc::syscall(libc::SYS_setuid, *uid));
            }
        }
        let place = |fd: RawFd, target: RawFd| {
            if fd == target {
                // dup2 onto itself keeps close-on-exec: clear it.
                sys(libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFD, 0));
            } else {
                sys(libc::syscall(libc::SYS_dup2, fd, target));
            }
        };
        place(p.stdin.as_raw_fd(), 0);
        if let Target::Fd(fd) = &p.stdout {
            place(fd.as_raw_fd(), 1);
        }
        if let Target::Fd(fd) = &p.stderr {
            place(fd.as_raw_fd(), 2);
        }
        if let Some((fd, target)) = &p.placed {
            place(fd.as_raw_fd(), *target);
        }
        if let Some(dir) = &p.dir {
            sys(libc::syscall(libc::SYS_chdir, dir.as_ptr()));
        }
        reset_signals(p.ignored);
        if let Some(limit) = &p.nofile {
            sys(libc::syscall(
                libc::SYS_setrlimit,
                libc::RLIMIT_NOFILE,
                limit as *const libc::rlimit,
            ));
        }
        if p.no_new_privs {
            sys(libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_NO_NEW_PRIVS,
                1usize,
                0usize,
                0usize,
                0usize,
            ));
        }
        // The PATH search, as execvp(3) does it: the first candidate that
        // exists wins; EACCES is remembered in case none does.
        let mut seen = libc::ENOENT;
        for &path in &l.candidates {
            libc::syscall(libc::SYS_execve, path, l.argv.as_ptr(), l.envp.as_ptr());
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => seen = libc::EACCES,
                other => fail(other),
            }
        }
        fail(seen)
    }
}

fn errno() -> libc::c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The kernel's `struct sigaction`; all zeros is SIG_DFL, no flags, empty
/// mask.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Signals whose disposition is SIG_IGN in corral (SIGPIPE, which Rust's
/// runtime ignores, and whatever corral's own parent left ignored). Read
/// once: corral changes no disposition after startup.
fn ignored_signals() -> &'static [libc::c_int] {
    static IGNORED: OnceLock<Vec<libc::c_int>> = OnceLock::new();
    IGNORED.get_or_init(|| {
        let mask = ignored_mask_from_proc().unwrap_or_else(ignored_mask_by_asking);
        (1..=64)
            .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
            .filter(|&sig| mask & (1u64 << (sig - 1)) != 0)
            .collect()
    })
}

/// The kernel's own list: `SigIgn:` of /proc/self/status (bit n-1 for
/// signal n). One open and read where asking took 62 rt_sigaction calls,
/// on the way from exec to the first child's exec (tini mode's start-up).
/// None without /proc.
fn ignored_mask_from_proc() -> Option<u64> {
    use std::io::Read;
    // SigIgn comes within the first kilobyte; one read takes it all.
    let mut buf = [0u8; 4096];
    let n = File::open("/proc/self/status").ok()?.read(&mut buf).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    let hex = text.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The same mask asked signal by signal. The raw syscall, unlike glibc's
/// sigaction(), also sees 32 and 33, which glibc reserves but an ignoring
/// parent may have left SIG_IGN.
fn ignored_mask_by_asking() -> u64 {
    (1..=64)
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            let mut old = KernelSigaction::default();
            // SAFETY: rt_sigaction(2) with no new action only writes `old`.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<KernelSigaction>(),
                    &mut old as *mut KernelSigaction,
                    8usize,
                )
            };
            ret == 0 && old.handler == libc::SIG_IGN
        })
        .fold(0, |mask, sig| mask | 1u64 << (sig - 1))
}

/// Variables addressed to corral itself by whatever started it: its own
/// supervisor's notify socket (podman --sdnotify, systemd) and socket
/// activation. A service that saw them would notify corral's supervisor or
/// take corral's descriptors for its own; only the main command, which
/// gets the inherited descriptors, keeps them.
pub const CORRAL_ONLY_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
];

/// One variable of corral's environment, as the `NAME=value` line the
/// child gets.
struct Var {
    line: CString,
    name_len: usize,
}

impl Var {
    fn new(name: &[u8], value: &[u8]) -> Option<Var> {
        let mut line = Vec::with_capacity(name.len() + value.len() + 2);
        line.extend_from_slice(name);
        line.push(b'=');
        line.extend_from_slice(value);
        Some(Var {
            line: CString::new(line).ok()?,
            name_len: name.len(),
        })
    }

    fn name(&self) -> &[u8] {
        self.line
            .as_bytes()
            .get(..self.name_len)
            .unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        self.line
            .as_bytes()
            .get(self.name_len + 1..)
            .unwrap_or_default()
    }
}

/// corral's own environment less `CORRAL_ONLY_ENV`, read once: corral
/// never changes it, and reading and splitting environ again at every
/// start was a fifth of the cost of starting a service.
fn inherited_env() -> &'static [Var] {
    static VARS: OnceLock<Vec<Var>> = OnceLock::new();
    VARS.get_or_init(|| passed_on(std::env::vars_os()))
}

fn passed_on(vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> Vec<Var> {
    vars.filter(|(k, _)| !CORRAL_ONLY_ENV.iter().any(|c| k.as_bytes() == c.as_bytes()))
        .filter_map(|(k, v)| Var::new(k.as_bytes(), v.as_bytes()))
        .collect()
}

/// Above this many overrides, names are found by hash instead of a scan.
const SCAN_OVERRIDES: usize = 8;

/// The child's environment: `base` without the names in `unset`, with
/// `overrides` applied in order (a later value for the same name wins; a
/// name `base` has keeps its place). `base`'s lines are borrowed, so a
/// start allocates only for what it overrides. Linear in the number of
/// variables: a service with thousands of them must not stall the event
/// loop at each start.
fn environment<'b>(
    base: &'b [Var],
    unset: &[String],
    overrides: &[(&str, &str)],
) -> io::Result<Vec<Cow<'b, CStr>>> {
    let mut names: Vec<&[u8]> = Vec::with_capacity(base.len() + overrides.len());
    let mut lines: Vec<Cow<'b, CStr>> = Vec::with_capacity(base.len() + overrides.len());
    for v in base {
        if !unset.iter().any(|u| v.name() == u.as_bytes()) {
            names.push(v.name());
            lines.push(Cow::Borrowed(v.line.as_c_str()));
        }
    }
    let hashed = overrides.len() > SCAN_OVERRIDES;
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    if hashed {
        index.extend(names.iter().enumerate().map(|(i, &n)| (n, i)));
    }
    for &(k, v) in overrides {
        let line = Var::new(k.as_bytes(), v.as_bytes())
            .ok_or_else(|| {
                let why = format!("environment variable {k} holds a NUL byte");
                io::Error::new(io::ErrorKind::InvalidInput, why)
            })?
            .line;
        let at = if hashed {
            index.get(k.as_bytes()).copied()
        } else {
            names.iter().position(|&n| n == k.as_bytes())
        };
        match at.and_then(|i| lines.get_mut(i)) {
            Some(slot) => *slot = Cow::Owned(line),
            None => {
                if hashed {
                    index.insert(k.as_bytes(), names.len());
                }
                names.push(k.as_bytes());
                lines.push(Cow::Owned(line));
            }
        }
    }
    Ok(lines)
}

/// Where to look for `program`: itself when it names a path, otherwise
/// each PATH entry in turn (the default search path when PATH is unset).
fn candidates(program: &str, path: Option<&str>) -> io::Result<Vec<CString>> {
    if program.contains('/') {
        return cstrings([program]);
    }
    let path = path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    cstrings(path.split(':').map(|dir| match dir {
        // An empty entry means the working directory (execvp(3)).
        "" => format!("./{program}"),
        d => format!("{}/{program}", d.trim_end_matches('/')),
    }))
}

fn cstrings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> io::Result<Vec<CString>> {
    items
        .into_iter()
        .map(|s| CString::new(s.as_ref()).map_err(io::Error::from))
        .collect()
}

/// corral's descriptor limit when it started, if `raise_nofile` raised it.
static ORIGINAL_NOFILE: OnceLock<libc::rlimit> = OnceLock::new();

fn original_nofile() -> Option<libc::rlimit> {
    ORIGINAL_NOFILE.get().copied()
}

/// Raises corral's soft RLIMIT_NOFILE to the hard limit: every service
/// costs corral a few descriptors (pipes, sockets), and 1024 is soon
/// spent. Children get the original limit back before exec, since
/// programs using select(2) break with descriptors above 1023 (systemd
/// does the same). Returns the new soft limit when it changed.
pub fn raise_nofile() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return None;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            return None;
        }
    }
    let _ = ORIGINAL_NOFILE.set(limit);
    Some(limit.rlim_max)
}

/// Why the main command could not start, with the shell's exit code.
#[derive(Debug)]
pub struct MainSpawnError {
    pub code: i32,
    pub message: String,
}

/// Starts the main command with corral's own stdio, in its own process
/// group which becomes the terminal's foreground group when stdin is a
/// terminal, so Ctrl-C reaches it directly (as tini does). `consumed`:
/// corral answers its own NOTIFY_SOCKET, so the command does not get it.
pub fn spawn_main(
    argv: &[String],
    inherited: &[RawFd],
    consumed: bool,
) -> Result<i32, MainSpawnError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(MainSpawnError {
            code: 127,
            message: "empty command".into(),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if consumed {
        cmd.env_remove("NOTIFY_SOCKET");
    }
    let inherited = inherited.to_vec();
    let ignored = ignored_signals();
    let nofile = original_nofile();
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
            reset_signals(ignored);
            if let Some(limit) = &nofile {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
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

/// Default dispositions and an empty mask for a child, between fork or
/// clone and exec: it must not inherit corral's blocked signals (all of
/// them, for the signalfd), the SIG_IGN of SIGPIPE that Rust sets, or
/// anything corral's own parent ignored (`ignored`, read before).
fn reset_signals(ignored: &[libc::c_int]) {
    let dfl = KernelSigaction::default();
    // SAFETY: rt_sigaction(2) and rt_sigprocmask(2) are async-signal-safe
    // and only read the structures on this stack frame.
    unsafe {
        for &sig in ignored {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
        // The raw call, like everything the cloned child makes.
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc's mask and the one asked signal by signal agree, and hold
    /// SIGPIPE (Rust's runtime ignores it).
    #[test]
    fn ignored_signals_from_proc_match_asking() {
        let proc = ignored_mask_from_proc().expect("/proc/self/status has SigIgn");
        assert_eq!(proc, ignored_mask_by_asking());
        assert_ne!(proc & (1 << (libc::SIGPIPE - 1)), 0, "{proc:#x}");
        assert!(ignored_signals().contains(&libc::SIGPIPE));
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<Var> {
        pairs
            .iter()
            .map(|(k, v)| Var::new(k.as_bytes(), v.as_bytes()).unwrap())
            .collect()
    }

    fn lines(env: &[Cow<'_, CStr>]) -> Vec<String> {
        env.iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn later_values_win_in_place_and_unset_names_go() {
        let base = vars(&[("PATH", "/bin"), ("TERM", "xterm"), ("LANG", "C")]);
        let overrides = [("A", "1"), ("PATH", "/x"), ("A", "2"), ("B", "=b")];
        let env = environment(&base, &["TERM".to_string()], &overrides).unwrap();
        assert_eq!(lines(&env), ["PATH=/x", "LANG=C", "A=2", "B==b"]);
        // The same with enough overrides to take the hashed path.
        let mut many: Vec<(&str, &str)> = overrides.to_vec();
        many.extend([("C", "1"), ("D", "1"), ("E", "1"), ("F", "1"), ("C", "3")]);
        assert!(many.len() > SCAN_OVERRIDES);
        let env = environment(&base, &["TERM".to_string()], &many).unwrap();
        assert_eq!(
            lines(&env),
            [
                "PATH=/x", "LANG=C", "A=2", "B==b", "C=3", "D=1", "E=1", "F=1"
            ]
        );
        // Nothing overridden: every line is corral's own, not a copy.
        let env = environment(&base, &[], &[]).unwrap();
        assert!(env.iter().all(|c| matches!(c, Cow::Borrowed(_))));
        assert!(environment(&base, &[], &[("X", "a\0b")]).is_err());
    }

    #[test]
    fn corrals_own_variables_are_not_passed_on() {
        let outer = [
            ("PATH", "/bin"),
            ("NOTIFY_SOCKET", "@outer"),
            ("LISTEN_FDS", "2"),
        ];
        let base = passed_on(outer.iter().map(|(k, v)| (k.into(), v.into())));
        let env = environment(&base, &[], &[("NOTIFY_SOCKET", "@mine")]).unwrap();
        assert_eq!(lines(&env), ["PATH=/bin", "NOTIFY_SOCKET=@mine"]);
    }

    #[test]
    fn ten_thousand_variables_are_all_set() {
        let names: Vec<String> = (0..10_000).map(|i| format!("V{i}")).collect();
        let overrides: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let env = environment(&[], &[], &overrides).unwrap();
        assert_eq!(env.len(), 10_000);
    }
}
