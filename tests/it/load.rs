//! Load and fault tests under a real PID 1: an orphan storm, many services
//! crash-looping at once, a self-daemonizing service. They check
//! behaviour (everything reaped, backoff holds, corral answers); the
//! figures they print are for the record, not asserted as speed targets.

use std::time::{Duration, Instant};

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    orphan_storm_is_reaped_while_status_answers,
    fifty_crash_loops_keep_their_backoff,
    leftovers_of_an_exited_service_are_killed,
    spawn_failure_under_a_pids_limit_backs_off_and_recovers,
    daemonizing_service_is_supervised_through_its_pidfile,
];

/// The storm itself (this test binary run as a service): `n` orphans in
/// bursts of 1,000 double forks; each grandchild is orphaned to corral and
/// exits at once.
pub fn orphan_storm(n: usize) {
    use nix::unistd::{ForkResult, fork};
    for _ in 0..n / 1000 {
        for _ in 0..1000 {
            // SAFETY: this process is single-threaded (the helper mode runs
            // before any thread starts); the children only fork and _exit.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    if let Ok(ForkResult::Child) = unsafe { fork() } {
                        unsafe { nix::libc::_exit(0) };
                    }
                    unsafe { nix::libc::_exit(0) };
                }
                Ok(ForkResult::Parent { .. }) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        while nix::sys::wait::wait().is_ok() {}
    }
    println!("forked {n}");
}

/// Sends one request line on the control socket and returns the answer.
fn raw_request(socket: &std::path::Path, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).unwrap();
    answer
}

/// corral's CPU time (user + system) in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // After the state letter: ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime stime.
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

fn orphan_storm_is_reaped_while_status_answers() -> TestResult {
    require_pid_namespace()?;
    const N: usize = 100_000;
    let storm = format!(
        "type = \"oneshot\"\ncommand = [\"{}\", \"--orphan-storm\", \"{N}\"]\ntimeout = \"10m\"\n",
        std::env::current_exe().unwrap().display()
    );
    let c = Setup::new(
        "storm",
        &[
            ("storm", &storm),
            ("steady", "command = [\"sleep\", \"1000\"]\n"),
        ],
    )
    .env("CORRAL_LOG", "info")
    .start();
    c.wait_socket();
    let mut times = Vec::new();
    let t0 = Instant::now();
    while c.service("storm")["state"] != "exited" {
        // A raw request: corral's answer time, without starting svctl.
        let s = Instant::now();
        let answer = raw_request(
            &c.socket,
            r#"{"version":1,"verb":"status","names":["steady"]}"#,
        );
        assert!(answer.contains("\"result\":\"ok\""), "{answer}");
        times.push(s.elapsed());
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "storm did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    assert!(
        c.stdout().contains(&format!("forked {N}")),
        "{}",
        c.stdout()
    );
    wait_until("no zombie left", 10 * SECOND, || {
        c.namespace_processes().iter().all(|p| p.1 != 'Z')
    });
    let left = c.namespace_processes();
    assert_eq!(left.len(), 1, "only steady's sleep remains: {left:?}");
    assert_eq!(c.service("steady")["restarts"], 0);
    times.sort();
    println!(
        "    orphan storm: {N} orphans in {:.1} s ({:.0}/s); a status request during it: median {:?}, 99th percentile {:?}, worst {:?} over {} requests",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        times
            .get(times.len() * 99 / 100)
            .copied()
            .unwrap_or_default(),
        times.last().copied().unwrap_or_default(),
        times.len()
    );
    Ok(())
}

fn fifty_crash_loops_keep_their_backoff() -> TestResult {
    require_pid_namespace()?;
    let crasher = "run = \"exit 1\"\nrestart_limit = 0\n";
    let mut services: Vec<(String, String)> = (0..50)
        .map(|i| (format!("crash{i:02}"), crasher.to_string()))
        .collect();
    services.push(("steady".into(), "command = [\"sleep\", \"1000\"]\n".into()));
    let refs: Vec<(&str, &str)> = services
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let c = Setup::new("crashloops", &refs)
        .env("CORRAL_LOG", "warn")
        .start();
    c.wait_socket();
    let pid = c.host_pid();
    let ticks0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(3) {
        let s = Instant::now();
        assert!(c.svctl(&["status", "steady"]).status.success());
        worst = worst.max(s.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = t0.elapsed();
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / 100.0;
    let status = c.status();
    for s in status["services"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let restarts = s["restarts"].as_u64().unwrap();
        if name == "steady" {
            assert_eq!((s["state"].as_str(), restarts), (Some("running"), 0), "{s}");
        } else {
            // 100 + 200 + 400 + 800 + 1600 ms: at most 5 restarts in 3 s
            // plus a little; a broken backoff would show hundreds.
            assert!(
                (2..=6).contains(&restarts),
                "{name}: {restarts} restarts in {wall:?}"
            );
        }
    }
    println!(
        "    50 crash loops: corral used {:.2} s CPU in {:.1} s ({:.1} %); svctl status worst {worst:?}",
        cpu,
        wall.as_secs_f64(),
        100.0 * cpu / wall.as_secs_f64()
    );
    assert!(
        cpu / wall.as_secs_f64() < 0.5,
        "corral is busy: {cpu} s CPU in {wall:?}"
    );
    Ok(())
}

fn leftovers_of_an_exited_service_are_killed() -> TestResult {
    require_pid_namespace()?;
    // The main process exits at once; its background child stays in the
    // service's process group and must not outlive it.
    let c = Setup::new(
        "leftover",
        &[
            (
                "forker",
                "run = \"sleep 1000 & echo forked; exit 0\"\nrestart = \"never\"\n",
            ),
            ("steady", "command = [\"sleep\", \"999\"]\n"),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("forker", "exited", 5 * SECOND);
    wait_until("the leftover to be gone", 5 * SECOND, || {
        let procs = c.namespace_processes();
        procs.len() == 1 && procs.iter().all(|p| p.2 == "sleep")
    });
    assert_eq!(c.service("steady")["state"], "running");
    Ok(())
}

fn spawn_failure_under_a_pids_limit_backs_off_and_recovers() -> TestResult {
    require_pid_namespace()?;
    let cg = std::path::PathBuf::from(format!(
        "/sys/fs/cgroup/pids/corral-it-{}",
        std::process::id()
    ));
    if std::fs::create_dir_all(&cg).is_err() || !cg.join("pids.max").exists() {
        return Err(Skip(
            "needs a writable pids cgroup at /sys/fs/cgroup/pids".into(),
        ));
    }
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("pids.max"), "max");
            // Empty once corral and its namespace are gone.
            for _ in 0..100 {
                if std::fs::remove_dir(&self.0).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let cleanup = Cleanup(cg.clone());
    // unshare, corral and four services fit; the other six cannot fork.
    std::fs::write(cg.join("pids.max"), "6").unwrap();
    let services: Vec<(String, String)> = (0..10)
        .map(|i| (format!("s{i}"), "command = [\"sleep\", \"1000\"]\nrestart_delay = \"50ms\"\nrestart_delay_max = \"200ms\"\nrestart_limit = 0\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = services
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let procs = cg.join("cgroup.procs");
    let c = Setup::new("pidslimit", &refs)
        .env("CORRAL_LOG", "warn")
        .start_with(move |cmd| {
            use std::os::unix::process::CommandExt;
            let path = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: open/write/close on data prepared before fork: the
            // child joins the cgroup before it becomes unshare.
            unsafe {
                cmd.pre_exec(move || {
                    let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let me = b"0";
                    nix::libc::write(fd, me.as_ptr().cast(), me.len());
                    nix::libc::close(fd);
                    Ok(())
                });
            }
        });
    c.wait_socket();
    wait_until("fork failures", 10 * SECOND, || {
        c.stderr().contains("Resource temporarily unavailable")
    });
    let status = c.status();
    let running = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "running")
        .count();
    assert!(running < 10, "the limit holds some back: {status}");
    // Lift the limit: the backoff brings them all up, corral never died.
    std::fs::write(cg.join("pids.max"), "max").unwrap();
    for i in 0..10 {
        c.wait_state(&format!("s{i}"), "running", 10 * SECOND);
    }
    drop(c);
    drop(cleanup);
    Ok(())
}

fn daemonizing_service_is_supervised_through_its_pidfile() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("daemonize");
    let pidfile = tmp.path("d.pid");
    // The classic init-script daemon: the launcher starts a detached
    // daemon (its own session) that writes its pidfile, then exits 0.
    let svc = format!(
        "run = \"setsid sh -c 'echo $$ > {pf}; exec sleep 1000' & sleep 0.2; exit 0\"\npidfile = \"{pf}\"\n",
        pf = pidfile.display()
    );
    let c = Setup::new(
        "daemonize",
        &[
            ("daemon", &svc),
            (
                "app",
                "command = [\"sleep\", \"999\"]\nrequires = [\"daemon\"]\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    let s = c.wait_state("app", "running", 10 * SECOND);
    let _ = s;
    let daemon = c.service("daemon");
    let written: i64 = tmp.read("d.pid").trim().parse().unwrap();
    assert_eq!(daemon["state"], "running", "{daemon}");
    assert_eq!(
        daemon["pid"].as_i64(),
        Some(written),
        "corral supervises the pid from the pidfile"
    );
    assert!(
        c.stderr()
            .contains(&format!("supervising pid {written} from its pidfile")),
        "{}",
        c.stderr()
    );
    // Stopping it reaches the daemon, which corral then reaps.
    let out = c.svctl(&["stop", "daemon"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        c.service("daemon")["last_exit"]["signal"],
        15,
        "{}",
        c.service("daemon")
    );
    assert!(
        c.namespace_processes()
            .iter()
            .all(|p| p.0 != written as i32 || p.1 == 'Z'),
        "daemon gone"
    );
    Ok(())
}
