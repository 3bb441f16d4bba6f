//! Shared helpers: a tiny test runner, temp dirs with service fixtures, and
//! `Corral`, the real binary running as PID 1 of a fresh PID namespace
//! under `unshare --pid --fork --mount-proc --kill-child`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Why a test did not run.
pub struct Skip(pub String);

pub type TestResult = Result<(), Skip>;

/// A named test function.
pub type Test = (&'static str, fn() -> TestResult);

/// `tests![a, b]`: the test table, each function named once.
#[macro_export]
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        &[$((stringify!($f), $f as fn() -> $crate::harness::TestResult)),*]
    };
}

/// The corral binary cargo built for this test run.
pub fn corral_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_corral"))
}

/// Skips unless python3 runs; `what` says what the test needs it for.
pub fn require_python(what: &str) -> TestResult {
    let ok = Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Skip(format!("needs python3 {what}")))
    }
}

/// Skips unless root with a working `unshare --pid`.
pub fn require_pid_namespace() -> TestResult {
    if !nix::unistd::geteuid().is_root() {
        return Err(Skip("needs root for unshare --pid".into()));
    }
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Skip(
            "unshare --pid --fork --mount-proc does not work here".into(),
        ))
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corral-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Services may run as nobody and write here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // CORRAL_IT_KEEP=1 keeps fixtures and logs for a post-mortem.
        if std::env::var_os("CORRAL_IT_KEEP").is_some() {
            return;
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` until it holds or `timeout` passes. Polling is fine here:
/// the tests, not corral, wait.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A corral run as PID 1 of its own PID namespace, with a services
/// directory and a control socket in a temp dir. Killed on drop.
pub struct Corral {
    pub dir: TempDir,
    pub services: PathBuf,
    pub socket: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
}

/// How to start corral.
pub struct Setup {
    pub dir: TempDir,
    pub socket: Option<PathBuf>,
    /// Pass `--socket` (default); without, corral picks its own path.
    pub socket_flag: bool,
    /// Runs corral through this (e.g. setpriv to drop root).
    pub wrapper: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A temp dir with `services.d/NAME.toml` for each `(name, toml)`.
    pub fn new(tag: &str, services: &[(&str, &str)]) -> Setup {
        let dir = TempDir::new(tag);
        fs::create_dir_all(dir.path("services.d")).unwrap();
        for (name, text) in services {
            dir.write(&format!("services.d/{name}.toml"), text);
        }
        Setup::in_dir(dir)
    }

    /// corral on the `services.d` a test already made in `dir`.
    pub fn in_dir(dir: TempDir) -> Setup {
        Setup {
            dir,
            socket: None,
            socket_flag: true,
            wrapper: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Puts the control socket at `rel` below the temp dir.
    pub fn socket(mut self, rel: &str) -> Setup {
        self.socket = Some(self.dir.path(rel));
        self
    }

    /// Runs corral as `uid:gid` with no supplementary groups, and without
    /// `--socket`, as an unprivileged container's init would.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Setup {
        self.wrapper = [
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.socket_flag = false;
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Setup {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Options for corral before any main command.
    pub fn args(mut self, args: &[&str]) -> Setup {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// `corral ... -- argv`
    pub fn main(mut self, argv: &[&str]) -> Setup {
        self.args.push("--".into());
        self.args.extend(argv.iter().map(|s| s.to_string()));
        self
    }

    pub fn start(self) -> Corral {
        self.start_with(|_| {})
    }

    /// Starts with a hook to adjust the unshare command (stdin, fds).
    pub fn start_with(self, adjust: impl FnOnce(&mut Command)) -> Corral {
        let services = self.dir.path("services.d");
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| self.dir.path("control.sock"));
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
            .args(&self.wrapper)
            .arg(corral_bin())
            .arg("--services")
            .arg(&services);
        if self.socket_flag {
            cmd.arg("--socket").arg(&socket);
        }
        cmd.args(&self.args)
            .env("CORRAL_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.dir.path("stdout")).unwrap())
            .stderr(fs::File::create(self.dir.path("stderr")).unwrap());
        adjust(&mut cmd);
        let child = cmd.spawn().expect("spawn unshare");
        Corral {
            dir: self.dir,
            services,
            socket,
            child,
            status: None,
        }
    }
}

impl Corral {
    /// corral's pid as the host sees it: the only child of unshare.
    pub fn host_pid(&self) -> i32 {
        let unshare = self.child.id();
        let path = format!("/proc/{unshare}/task/{unshare}/children");
        let mut pid = 0;
        wait_until(
            "corral to be forked by unshare",
            Duration::from_secs(5),
            || {
                pid = fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
                    .unwrap_or(0);
                pid > 0
            },
        );
        pid
    }

    /// The pid of unshare itself (corral's parent).
    pub fn unshare_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// corral's stdout, when the setup made it a pipe.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Peak resident memory of corral, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.host_pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends a signal to corral (PID 1 inside). unshare forwards nothing.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.host_pid()), sig).unwrap();
    }

    pub fn stdout(&self) -> String {
        self.dir.read("stdout")
    }

    pub fn stderr(&self) -> String {
        self.dir.read("stderr")
    }

    /// Waits for the control socket to accept connections.
    pub fn wait_socket(&self) {
        wait_until("the control socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
    }

    /// Runs `svctl --socket SOCK args...` (the binary invoked as svctl).
    pub fn svctl(&self, args: &[&str]) -> Output {
        svctl(&self.socket, args)
    }

    /// `svctl --socket SOCKET args...` for another socket than the setup's.
    pub fn svctl_at(&self, socket: &str, args: &[&str]) -> Output {
        svctl(Path::new(socket), args)
    }

    /// `svctl status --json` parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.svctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "svctl status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One service's entry of `svctl status --json`.
    pub fn service(&self, name: &str) -> serde_json::Value {
        self.status()["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no service {name} in status"))
    }

    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        wait_until(&format!("{name} to be {state}"), timeout, || {
            last = self.service(name);
            last["state"] == state
        });
        last
    }

    /// Waits for corral (and so unshare) to exit; returns its exit code,
    /// or 128+N when killed by signal N.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
            }
            assert!(
                Instant::now() < deadline,
                "corral did not exit within {timeout:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Processes in corral's namespace other than corral, as (pid, state,
    /// name), read from the host's /proc through the namespace's pids.
    pub fn namespace_processes(&self) -> Vec<(i32, char, String)> {
        let root = self.host_pid();
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            let children =
                fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                if let Some((state, name)) = proc_state(c) {
                    out.push((c, state, name));
                }
                stack.push(c);
            }
        }
        out
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        if self.status.is_none() {
            // corral first: --kill-child's death signal does not survive
            // the uid change of a corral run as another user (run_as), so
            // such a corral outlived its test. As PID 1 it takes its
            // namespace with it.
            let unshare = self.child.id();
            let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                .unwrap_or_default();
            for pid in children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `svctl ARGS` as `uid:gid` (no supplementary groups unless `groups`),
/// with `env`, and without --socket unless given.
pub fn svctl_as(
    uid: u32,
    gid: u32,
    groups: &[u32],
    socket: Option<&Path>,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(svctl_link());
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env_remove("CORRAL_SOCKET");
    let groups: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|&g| nix::unistd::Gid::from_raw(g))
        .collect();
    // SAFETY: only syscalls on data prepared before fork; groups and gid
    // while still root, uid last.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
            Ok(())
        });
    }
    cmd.output().expect("run svctl")
}

/// `svctl` run through a symlink named svctl, as in an image.
pub fn svctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(svctl_link())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run svctl")
}

/// A symlink named `svctl` to the corral binary, made once per test run.
pub fn svctl_link() -> PathBuf {
    static LINK: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LINK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corral-it-bin-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join("svctl");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(corral_bin(), &link).unwrap();
        link
    })
    .clone()
}

/// State letter and name from /proc/PID/stat.
pub fn proc_state(pid: i32) -> Option<(char, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let state = stat.get(close + 2..)?.chars().next()?;
    Some((state, name))
}

/// The number at the end of a `NAME <nanos>` line in a file of such lines.
pub fn stamp(text: &str, key: &str) -> u128 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{key} <ns>` line in:\n{text}"))
}

pub const SECOND: Duration = Duration::from_secs(1);
