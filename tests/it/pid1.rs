//! PID 1 duties: reaping, privilege drop, a clean start for children,
//! the main command (tini mode) with its exit codes and signals.

use nix::sys::signal::Signal;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    reaps_1000_double_forked_orphans,
    drops_privileges_to_nobody,
    children_start_with_clean_mask_and_only_fds_0_1_2,
    main_command_exit_codes,
    main_command_not_runnable_is_126_or_127,
    tini_mode_forwards_signals_and_stays_silent,
    main_command_runs_after_services_and_stops_them,
    job_control_signals_never_stop_corral,
    service_exec_failure_is_reported,
    service_gets_its_dir_env_path_and_null_stdin,
    service_gets_only_its_own_descriptors,
    service_gets_only_its_own_descriptors_from_a_copied_table,
    idle_corral_never_wakes_up,
    main_command_is_the_terminal_foreground_group,
    socket_is_private,
    a_panic_stops_everything_and_exits_70,
    tini_mode_opens_no_control_socket,
    inherited_zombies_are_reaped_at_start,
];

fn reaps_1000_double_forked_orphans() -> TestResult {
    require_pid_namespace()?;
    let svc = r#"run = """
i=0
while [ $i -lt 1000 ]; do (sleep 0.1 &); i=$((i+1)); done
echo spawned
exec sleep 1000
"""
"#;
    let c = Setup::new("reap", &[("forker", svc)]).start();
    c.wait_socket();
    wait_until("1000 orphans to be spawned", 60 * SECOND, || {
        c.stdout().contains("spawned")
    });
    let mut procs = Vec::new();
    wait_until("every orphan to be reaped", 20 * SECOND, || {
        procs = c.namespace_processes();
        procs.len() == 1
    });
    assert_eq!(procs[0].2, "sleep", "{procs:?}");
    assert!(procs.iter().all(|p| p.1 != 'Z'), "{procs:?}");
    assert!(
        c.stderr().contains("reaped orphan"),
        "orphans went through corral's reaper"
    );
    Ok(())
}

fn drops_privileges_to_nobody() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("priv");
    let out = tmp.path("id");
    let c = Setup::new(
        "priv",
        &[(
            "low",
            &format!(
                "run = \"grep -E '^(Uid|Gid|Groups):' /proc/self/status > {0}; echo HOME=$HOME USER=$USER LOGNAME=$LOGNAME >> {0}; exec sleep 1000\"\nuser = \"nobody\"\n",
                out.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("the id report", 5 * SECOND, || {
        tmp.read("id").contains("HOME=")
    });
    let text = tmp.read("id");
    let nobody_gid = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .and_then(|l| l.split(':').nth(3).map(String::from))
        .unwrap();
    assert!(text.contains("Uid:\t65534\t65534\t65534\t65534"), "{text}");
    assert!(
        text.contains(&format!(
            "Gid:\t{nobody_gid}\t{nobody_gid}\t{nobody_gid}\t{nobody_gid}"
        )),
        "{text}"
    );
    let groups = text.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(
        !groups.split_whitespace().any(|g| g == "0"),
        "root group dropped: {groups}"
    );
    assert!(groups.contains(&nobody_gid), "{groups}");
    assert!(
        text.contains("HOME=/nonexistent USER=nobody LOGNAME=nobody"),
        "{text}"
    );
    assert_eq!(c.service("low")["user"], "nobody");
    Ok(())
}

/// Opens a file as fd 7 in corral (without CLOEXEC), as a socket
/// activator would, and leaves SIGHUP and SIGUSR2 ignored, as a careless
/// parent (nohup, a shell script) would: ignored dispositions survive
/// exec, so corral must reset them for its children.
fn with_inherited_fd7(cmd: &mut std::process::Command) {
    let f = std::fs::File::open("/dev/null").unwrap();
    let raw = f.as_raw_fd();
    // The File stays open in the parent until the command is spawned.
    std::mem::forget(f);
    unsafe {
        cmd.pre_exec(move || {
            // The file may have got number 7 itself (tests run in
            // parallel): dup2 onto itself would keep close-on-exec.
            let ret = if raw == 7 {
                nix::libc::fcntl(7, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(raw, 7)
            };
            if ret < 0 {
                return Err(std::io::Error::last_os_error());
            }
            nix::libc::signal(nix::libc::SIGHUP, nix::libc::SIG_IGN);
            nix::libc::signal(nix::libc::SIGUSR2, nix::libc::SIG_IGN);
            Ok(())
        });
    }
}

fn children_start_with_clean_mask_and_only_fds_0_1_2() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("clean");
    // Each probe reads its own /proc/self/status: reading a shell's from a
    // child races with the shell blocking signals around its own forks.
    let mask = |who: &str| {
        format!(
            "grep -E '^Sig(Blk|Ign):' /proc/self/status > {}",
            tmp.path(who).display()
        )
    };
    let fds = |who: &str| {
        format!(
            "ls /proc/$$/fd | tr '\\n' ' ' > {}",
            tmp.path(who).display()
        )
    };
    // The service's descriptors are read from outside once it has exec'd
    // sleep: a shell listing its own (`ls /proc/$$/fd | ...`) races with
    // the pipe it makes for that very pipeline.
    let svc = format!(
        "run = \"{}; touch {}; exec sleep 1000\"\n",
        mask("service-mask"),
        tmp.path("service-fds").display()
    );
    let main_script = format!("{}; {}; sleep 1000", mask("main-mask"), fds("main-fds"));
    let c = Setup::new("clean", &[("probe", &svc)])
        .main(&["sh", "-c", &main_script])
        .start_with(with_inherited_fd7);
    c.wait_socket();
    wait_until("all reports", 5 * SECOND, || {
        tmp.path("service-fds").exists()
            && ["service-mask", "main-fds", "main-mask"]
                .iter()
                .all(|f| tmp.read(f).ends_with(' ') || tmp.read(f).contains("Ign"))
    });
    for who in ["service-mask", "main-mask"] {
        let text = tmp.read(who);
        assert!(text.contains("SigBlk:\t0000000000000000"), "{who}: {text}");
        assert!(text.contains("SigIgn:\t0000000000000000"), "{who}: {text}");
    }
    let corral = c.host_pid();
    let mut service_fds = String::new();
    wait_until("the service to exec sleep", 5 * SECOND, || {
        let children = std::fs::read_to_string(format!("/proc/{corral}/task/{corral}/children"))
            .unwrap_or_default();
        let sleeper = children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|&p| {
                // The service's sleep leads its own session; the main
                // command's (dash execs a last command too) does not.
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let sid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(3))
                    .and_then(|f| f.parse::<i32>().ok());
                proc_state(p).is_some_and(|(_, name)| name == "sleep") && sid == Some(p)
            });
        let Some(pid) = sleeper else { return false };
        let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        fds.sort();
        service_fds = format!("{fds:?}");
        true
    });
    assert_eq!(service_fds, "[0, 1, 2]", "a service gets exactly 0, 1, 2");
    // The main command keeps what corral inherited: our fd 7, and
    // whatever the test runner itself passed down (cargo's jobserver).
    let main = tmp.read("main-fds");
    let main: Vec<&str> = main.split_whitespace().collect();
    assert!(
        ["0", "1", "2", "7"].iter().all(|f| main.contains(f)),
        "the main command keeps fd 7: {main:?}"
    );
    Ok(())
}

fn main_command_exit_codes() -> TestResult {
    require_pid_namespace()?;
    for (script, want) in [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 143)] {
        // Both without services (tini mode) and with one.
        for services in [&[][..], &[("bg", "command = [\"sleep\", \"1000\"]\n")][..]] {
            let mut c = Setup::new("codes", services)
                .main(&["sh", "-c", script])
                .start();
            let code = c.wait_exit(10 * SECOND);
            assert_eq!(
                code,
                want,
                "`{script}` with {} services\n{}",
                services.len(),
                c.stderr()
            );
        }
    }
    Ok(())
}

fn main_command_not_runnable_is_126_or_127() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new("nf", &[])
        .main(&["/nonexistent/cmd"])
        .env("CORRAL_LOG", "")
        .start();
    assert_eq!(c.wait_exit(5 * SECOND), 127);
    assert!(
        c.stderr().contains("cannot run /nonexistent/cmd"),
        "{}",
        c.stderr()
    );
    let mut c = Setup::new("nx", &[])
        .main(&["/etc/passwd"])
        .env("CORRAL_LOG", "")
        .start();
    assert_eq!(c.wait_exit(5 * SECOND), 126);
    assert!(c.stderr().contains("Permission denied"), "{}", c.stderr());
    Ok(())
}

fn tini_mode_forwards_signals_and_stays_silent() -> TestResult {
    require_pid_namespace()?;
    let script = "for s in HUP USR1 USR2 INT WINCH QUIT; do trap \"echo got $s\" $s; done; \
                  trap 'echo got TERM; exit 5' TERM; echo ready; while :; do sleep 0.02; done";
    let mut c = Setup::new("tini", &[])
        .main(&["sh", "-c", script])
        .env("CORRAL_LOG", "")
        .start();
    wait_until("ready", 5 * SECOND, || c.stdout().contains("ready"));
    for (sig, word) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGQUIT, "QUIT"),
    ] {
        c.signal(sig);
        wait_until(&format!("{word} to arrive"), 5 * SECOND, || {
            c.stdout().contains(&format!("got {word}\n"))
        });
    }
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(5 * SECOND), 5);
    // The main command's output is corral's own, unprefixed.
    assert!(c.stdout().starts_with("ready\n"), "{}", c.stdout());
    assert_eq!(c.stderr(), "", "tini mode prints nothing of its own");
    // Killed by the forwarded signal: 128 + 15.
    let mut c = Setup::new("tini143", &[]).main(&["sleep", "1000"]).start();
    wait_until("sleep to run", 5 * SECOND, || {
        c.namespace_processes().iter().any(|p| p.2 == "sleep")
    });
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(5 * SECOND), 143);
    Ok(())
}

fn main_command_runs_after_services_and_stops_them() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("mainsvc");
    let svc = format!(
        "run = \"trap 'echo db-term >> {0}; exit 0' TERM; echo db-start >> {0}; while :; do sleep 0.02; done\"\n",
        tmp.path("log").display()
    );
    let setup = Setup::new("mainsvc", &[("db", &svc)]);
    let main = format!(
        "while ! grep -q db-start {0}; do sleep 0.01; done; echo main-ran >> {0}; {1} --socket {2} status >> {0}; exit 4",
        tmp.path("log").display(),
        svctl_link().display(),
        setup.dir.path("control.sock").display()
    );
    let mut c = setup.main(&["sh", "-c", &main]).start();
    let code = c.wait_exit(10 * SECOND);
    assert_eq!(code, 4, "{}", c.stderr());
    let log = tmp.read("log");
    let order: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("NAME") && !l.starts_with("db "))
        .collect();
    assert_eq!(order.first(), Some(&"db-start"), "{log}");
    assert!(
        order.contains(&"main-ran") && order.last() == Some(&"db-term"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("db ") && l.contains("running")),
        "svctl works from the main command:\n{log}"
    );
    Ok(())
}

fn job_control_signals_never_stop_corral() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new("tstp", &[("svc", "command = [\"sleep\", \"1000\"]\n")]).start();
    c.wait_socket();
    for sig in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
        c.signal(sig);
    }
    // Still answering, so not stopped.
    assert_eq!(c.service("svc")["state"], "running");
    let state = proc_state(c.host_pid()).unwrap().0;
    assert_ne!(state, 'T', "corral must not be stopped");
    Ok(())
}

/// The spawn contract that clone(CLONE_VM | CLONE_VFORK) took over from
/// std's Command: working_dir, env on top of corral's (a later PATH
/// decides the search), a bare name found on PATH, stdin on /dev/null,
/// HOME/USER/LOGNAME of the user.
fn service_gets_its_dir_env_path_and_null_stdin() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("contract");
    let bin = tmp.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // A program only the service's PATH can find; it leaves a mark.
    let mark = tmp.path("found");
    tmp.write(
        "bin/only-here",
        &format!(
            "#!/bin/sh\necho found > {}\nexec sleep 1000\n",
            mark.display()
        ),
    );
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(tmp.path("bin/only-here"), mode).unwrap();
    let report = tmp.path("report");
    let svc = format!(
        "run = \"echo $(pwd) $FOO $HOME $USER $LOGNAME $(readlink /proc/self/fd/0) > {}; exec only-here\"\n\
         working_dir = \"{}\"\nuser = \"nobody\"\n\
         env = {{ FOO = \"bar\", PATH = \"{}:/usr/bin:/bin\" }}\n",
        report.display(),
        bin.display(),
        bin.display()
    );
    let c = Setup::new("contract", &[("svc", &svc)])
        .env("FOO", "corral's")
        .start();
    c.wait_socket();
    c.wait_state("svc", "running", 5 * SECOND);
    wait_until("the report", 5 * SECOND, || {
        tmp.read("report").ends_with('\n')
    });
    assert_eq!(
        tmp.read("report").trim(),
        format!("{} bar /nonexistent nobody nobody /dev/null", bin.display())
    );
    wait_until("only-here, found on the service's PATH", 5 * SECOND, || {
        tmp.read("found") == "found\n"
    });
    Ok(())
}

/// However many descriptors corral holds for other services (relay pipes,
/// kept above the child's own), a service gets exactly 0, 1, 2 and its
/// readiness fd: the child shares corral's table only until its
/// close_range(CLOSE_RANGE_UNSHARE), and its output still reaches the log.
fn service_gets_only_its_own_descriptors() -> TestResult {
    own_descriptors("1")
}

/// The same where the clone copies the table (CORRAL_SHARE_FILES=0).
fn service_gets_only_its_own_descriptors_from_a_copied_table() -> TestResult {
    own_descriptors("0")
}

fn own_descriptors(share_files: &str) -> TestResult {
    require_pid_namespace()?;
    let mut files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("s{i}"),
                "run = \"echo up; exec sleep 1000\"\n".to_string(),
            )
        })
        .collect();
    let needs: Vec<String> = files.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    // Started after the 40 (requires), never ready: its fd 5 stays open.
    files.push((
        "watched".into(),
        format!(
            "command = [\"sleep\", \"1002\"]\nrequires = [{}]\n[ready]\nfd = 5\n",
            needs.join(", ")
        ),
    ));
    let services: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let c = Setup::new("fds", &services)
        .env("CORRAL_SHARE_FILES", share_files)
        .start();
    c.wait_socket();
    c.wait_state("watched", "starting", 10 * SECOND);
    let watched = || {
        c.namespace_processes()
            .into_iter()
            .map(|(pid, _, _)| pid)
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                    == b"sleep\x001002\x00"
            })
    };
    wait_until("the watched service's sleep", 5 * SECOND, || {
        watched().is_some()
    });
    let pid = watched().unwrap();
    let fds = || {
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort();
        fds
    };
    // Right after its exec, sleep's own start-up (glibc's setlocale) may
    // hold a locale file open for a moment: a descriptor corral passed on
    // stays, that one goes.
    let settled = Instant::now() + 2 * SECOND;
    while fds() != [0, 1, 2, 5] && Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fds(), [0, 1, 2, 5], "the watched service's descriptors");
    // And corral's own stdio is still what it was given (by unshare): no
    // child's dup2 reached corral's table.
    let link = |pid: i32, fd: i32| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok();
    for fd in 0..3 {
        assert_eq!(
            link(c.host_pid(), fd),
            link(c.unshare_pid(), fd),
            "corral's fd {fd}"
        );
    }
    wait_until("every service's line in the log", 5 * SECOND, || {
        c.stdout().matches(" up").count() >= 40
    });
    Ok(())
}

fn service_exec_failure_is_reported() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "execfail",
        &[
            ("missing", "command = [\"/nonexistent/daemon\"]\nrestart = \"never\"\n"),
            ("retried", "command = [\"/nonexistent/daemon\"]\nrestart_delay = \"10ms\"\nrestart_limit = 1\n"),
            ("noexec", "command = [\"/etc/passwd\"]\nrestart = \"never\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    let s = c.wait_state("noexec", "failed", 5 * SECOND);
    assert!(
        s["note"]
            .as_str()
            .unwrap()
            .contains("Permission denied (os error 13)"),
        "{s}"
    );
    let s = c.wait_state("missing", "failed", 5 * SECOND);
    let note = s["note"].as_str().unwrap();
    assert!(
        note.contains("cannot execute /nonexistent/daemon") && note.contains("No such file"),
        "{s}"
    );
    let s = c.wait_state("retried", "failed", 5 * SECOND);
    assert_eq!(s["restarts"], 1, "{s}");
    Ok(())
}

fn idle_corral_never_wakes_up() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "idle",
        &[
            ("a", "command = [\"sleep\", \"1000\"]\n"),
            ("b", "command = [\"sleep\", \"1000\"]\nrequires = [\"a\"]\n"),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("b", "running", 5 * SECOND);
    let switches = || {
        std::fs::read_to_string(format!("/proc/{}/status", c.host_pid()))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .map(|v| v.trim().parse::<u64>().unwrap())
            })
            .unwrap()
    };
    // Let the status call's own wakeups settle, then watch for 1.5 s.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = switches();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = switches();
    assert_eq!(
        before,
        after,
        "corral woke up {} times while idle",
        after - before
    );
    Ok(())
}

fn main_command_is_the_terminal_foreground_group() -> TestResult {
    require_pid_namespace()?;
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(Skip(
            "needs `script` (bsdutils) for a pseudo-terminal".into(),
        ));
    }
    let tmp = TempDir::new("tty");
    tmp.write("none/.keep", "");
    // `script` gives the command a pty as controlling terminal; the main
    // command reports its process group and the terminal's foreground group.
    let inner = format!(
        "unshare --pid --fork --mount-proc --kill-child {} --services {} --socket {} -- sh -c 'cut -d\" \" -f1,5,8 /proc/$$/stat > {}'",
        corral_bin().display(),
        tmp.path("none").display(),
        tmp.path("sock").display(),
        tmp.path("stat").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stat = tmp.read("stat");
    let f: Vec<&str> = stat.split_whitespace().collect();
    assert_eq!(f.len(), 3, "{stat}");
    assert_eq!(
        f[0], f[1],
        "the main command leads its own process group: {stat}"
    );
    assert_eq!(
        f[1], f[2],
        "and that group is the terminal's foreground group: {stat}"
    );
    Ok(())
}

fn socket_is_private() -> TestResult {
    require_pid_namespace()?;
    use std::os::unix::fs::PermissionsExt;
    let c = Setup::new("perm", &[])
        .socket("run/corral/control.sock")
        .start();
    c.wait_socket();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&c.socket), 0o600);
    assert_eq!(mode(c.socket.parent().unwrap()), 0o700);
    Ok(())
}

fn a_panic_stops_everything_and_exits_70() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("panic");
    let svc = format!(
        "run = \"trap 'echo got TERM > {}; exit 0' TERM; echo up; while :; do sleep 0.02; done\"\n",
        tmp.path("term").display()
    );
    let mut c = Setup::new("panic", &[("svc", &svc)])
        .env("CORRAL_TEST_PANIC_ON_SIGUSR2", "1")
        .start();
    wait_until("the service", 5 * SECOND, || {
        c.stdout().contains("svc | up")
    });
    c.signal(nix::sys::signal::Signal::SIGUSR2);
    assert_eq!(c.wait_exit(10 * SECOND), 70, "{}", c.stderr());
    assert!(
        c.stderr().contains("corral: fatal: internal error"),
        "{}",
        c.stderr()
    );
    assert!(
        c.stderr().contains("stopping every process"),
        "{}",
        c.stderr()
    );
    wait_until("the service's TERM trap", 5 * SECOND, || {
        tmp.read("term").contains("got TERM")
    });
    Ok(())
}

fn tini_mode_opens_no_control_socket() -> TestResult {
    require_pid_namespace()?;
    let mut setup = Setup::new("tinisock", &[]).main(&["sleep", "1000"]);
    setup.socket_flag = false;
    let c = setup.start();
    wait_until("sleep to run", 5 * SECOND, || {
        c.namespace_processes().iter().any(|p| p.2 == "sleep")
    });
    let sockets = |pid: i32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .filter(|t| t.starts_with("socket:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // What corral inherited (another test thread's socket, caught by the
    // fork of unshare) is unshare's too; only a socket of corral's own
    // counts.
    // The std spawn of the main command holds a socketpair until its exec
    // has been seen, which may be just after `sleep` shows in /proc: a
    // socket that stays is what this test is about.
    let inherited = sockets(c.unshare_pid());
    let mut own = Vec::new();
    let settled = (0..200).any(|_| {
        own = sockets(c.host_pid())
            .into_iter()
            .filter(|s| !inherited.contains(s))
            .collect();
        own.is_empty() || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
    });
    assert!(
        settled,
        "a drop-in for tini binds no control socket: {own:?}"
    );
    Ok(())
}

/// Regression: zombies corral inherited (it was exec'd by a process whose
/// children had exited, their SIGCHLD long gone) stayed until
/// corral's first wakeup, a signal or a child's exit, and that first
/// signal then waited for the reaping before it was forwarded.
fn inherited_zombies_are_reaped_at_start() -> TestResult {
    require_pid_namespace()?;
    require_python("a wrapper that leaves zombies")?;
    let mut setup = Setup::new("inherited-zombies", &[]).main(&["sleep", "1000"]);
    // Three children exit and are not waited for (SIGCHLD is discarded
    // under SIG_DFL); then the process becomes corral.
    let code = "import os, sys, time\n\
                for _ in range(3):\n    \
                    if os.fork() == 0: os._exit(0)\n\
                time.sleep(0.3)\n\
                os.execvp(sys.argv[1], sys.argv[1:])\n";
    setup.wrapper = ["python3", "-c", code].map(String::from).to_vec();
    let mut c = setup.start();
    wait_until("the main command", 5 * SECOND, || {
        c.namespace_processes().iter().any(|p| p.2 == "sleep")
    });
    wait_until("no zombie left, with no signal sent", 5 * SECOND, || {
        !c.namespace_processes().iter().any(|p| p.1 == 'Z')
    });
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(5 * SECOND), 143);
    Ok(())
}
