//! Service life cycle under a real PID 1: start order, restarts with
//! backoff, the crash-loop budget, stop escalation, shutdown order, budget
//! and orphans.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    start_order_follows_requires,
    crash_restarts_with_backoff,
    crash_loop_ends_failed_until_svctl_start,
    stop_escalates_to_sigkill,
    shutdown_in_reverse_order_exits_0,
    shutdown_budget_bounds_a_stuck_service,
    second_sigterm_skips_to_sigkill,
    orphans_get_sigterm_at_shutdown,
    output_is_prefixed_and_stderr_stays_stderr,
    disabled_service_starts_only_on_request,
    shutdown_with_stubborn_quitting_and_respawning_services,
    stopping_a_dependency_says_what_it_took_down_and_starting_it_brings_them_back,
];

/// A run script that ignores SIGTERM and says so.
const IGNORES_TERM: &str = "trap '' TERM; echo ignoring; while :; do sleep 0.05; done";

/// A service that logs `NAME-start <ns>` and `NAME-term <ns>` to LOG and
/// exits on SIGTERM.
fn polite(name: &str, log: &std::path::Path, extra: &str) -> String {
    format!(
        r#"run = """
trap 'echo "{name}-term $(date +%s%N)" >> {log}; exit 0' TERM
echo "{name}-start $(date +%s%N)" >> {log}
echo {name} up
while :; do sleep 0.05; done
"""
{extra}
"#,
        log = log.display()
    )
}

fn start_order_follows_requires() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("order");
    let log = tmp.path("log");
    let c = Setup::new(
        "order",
        &[
            ("app", &polite("app", &log, "requires = [\"db\"]")),
            ("db", &polite("db", &log, "")),
            (
                "cache",
                &polite("cache", &log, "requires = [\"app\", \"db\"]"),
            ),
        ],
    )
    .start();
    c.wait_socket();
    for s in ["db", "app", "cache"] {
        c.wait_state(s, "running", 5 * SECOND);
    }
    let pid = |n: &str| c.service(n)["pid"].as_i64().unwrap();
    // Pids in a fresh namespace count up: the fork order is db, app, cache.
    assert!(
        pid("db") < pid("app") && pid("app") < pid("cache"),
        "{}",
        c.status()
    );
    let err = c.stderr();
    let at = |n: &str| {
        err.find(&format!("{n}: started"))
            .unwrap_or_else(|| panic!("{err}"))
    };
    assert!(at("db") < at("app") && at("app") < at("cache"), "{err}");
    Ok(())
}

fn crash_restarts_with_backoff() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("backoff");
    let log = tmp.path("starts");
    let c = Setup::new(
        "backoff",
        &[(
            "flaky",
            &format!(
                "run = \"date +%s%N >> {}; exit 1\"\nrestart_delay = \"100ms\"\nrestart_limit = 0\n",
                log.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("four starts", 10 * SECOND, || {
        tmp.read("starts").lines().count() >= 4
    });
    let t: Vec<u128> = tmp
        .read("starts")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let gaps: Vec<u128> = t.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    // 100 ms, then 200 ms, then 400 ms: never sooner.
    assert!(
        gaps[0] >= 100 && gaps[1] >= 200 && gaps[2] >= 400,
        "gaps in ms: {gaps:?}"
    );
    let s = c.service("flaky");
    assert!(s["restarts"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["last_exit"]["code"], 1, "{s}");
    Ok(())
}

fn crash_loop_ends_failed_until_svctl_start() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("loop");
    let c = Setup::new(
        "loop",
        &[
            (
                "crasher",
                &format!(
                    "run = \"echo x >> {}; exit 7\"\nrestart_delay = \"10ms\"\nrestart_limit = 2\n",
                    tmp.path("runs").display()
                ),
            ),
            ("steady", "command = [\"sleep\", \"1000\"]\n"),
        ],
    )
    .start();
    c.wait_socket();
    let s = c.wait_state("crasher", "failed", 5 * SECOND);
    assert_eq!(
        tmp.read("runs").lines().count(),
        3,
        "first run and 2 restarts"
    );
    assert!(s["note"].as_str().unwrap().contains("3 quick exits"), "{s}");
    assert_eq!(c.service("steady")["state"], "running");
    assert_eq!(c.service("steady")["restarts"], 0);
    // Stays failed: no timer, no further runs.
    assert_eq!(c.wait_state("crasher", "failed", SECOND)["restarts"], 2);
    // svctl start resets the budget: three more runs, then failed again.
    let out = c.svctl(&["start", "crasher"]);
    assert!(out.status.code().is_some(), "{out:?}");
    wait_until("three more runs", 5 * SECOND, || {
        tmp.read("runs").lines().count() == 6
    });
    c.wait_state("crasher", "failed", 5 * SECOND);
    Ok(())
}

fn stop_escalates_to_sigkill() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "escalate",
        &[(
            "stubborn",
            &format!("run = \"{IGNORES_TERM}\"\nstop_timeout = \"300ms\"\n"),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("stubborn", "running", 5 * SECOND);
    wait_until("the trap to be set", 5 * SECOND, || {
        c.stdout().contains("ignoring")
    });
    let t0 = Instant::now();
    let out = c.svctl(&["stop", "stubborn"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took >= Duration::from_millis(300),
        "stopped after {took:?}, before stop_timeout"
    );
    let s = c.service("stubborn");
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["last_exit"]["signal"], Signal::SIGKILL as i32, "{s}");
    assert!(c.stderr().contains("did not stop within"), "{}", c.stderr());
    Ok(())
}

fn shutdown_in_reverse_order_exits_0() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("revorder");
    let log = tmp.path("log");
    let mut c = Setup::new(
        "revorder",
        &[
            ("db", &polite("db", &log, "")),
            ("app", &polite("app", &log, "requires = [\"db\"]")),
            ("web", &polite("web", &log, "requires = [\"app\"]")),
            ("cron", &polite("cron", &log, "")),
        ],
    )
    .start();
    c.wait_socket();
    wait_until("all four to log their start", 5 * SECOND, || {
        tmp.read("log").matches("-start").count() == 4
    });
    let t0 = Instant::now();
    c.signal(Signal::SIGTERM);
    let code = c.wait_exit(5 * SECOND);
    let took = t0.elapsed();
    assert_eq!(code, 0, "{}", c.stderr());
    let text = tmp.read("log");
    let (web, app, db) = (
        stamp(&text, "web-term"),
        stamp(&text, "app-term"),
        stamp(&text, "db-term"),
    );
    assert!(
        web < app && app < db,
        "TERM order must be web, app, db:\n{text}"
    );
    stamp(&text, "cron-term");
    // Polite services: milliseconds, not the 8 s budget.
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(!c.socket.exists(), "socket removed at exit");
    Ok(())
}

fn shutdown_budget_bounds_a_stuck_service() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new(
        "budget",
        &[(
            "stuck",
            &format!("run = \"{IGNORES_TERM}\"\nstop_timeout = \"60s\"\n"),
        )],
    )
    .env("CORRAL_SHUTDOWN_TIMEOUT", "1s")
    .start();
    c.wait_socket();
    wait_until("the trap to be set", 5 * SECOND, || {
        c.stdout().contains("ignoring")
    });
    let t0 = Instant::now();
    c.signal(Signal::SIGTERM);
    let code = c.wait_exit(5 * SECOND);
    let took = t0.elapsed();
    assert_eq!(
        code,
        1,
        "a service had to be SIGKILLed: exit 1\n{}",
        c.stderr()
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
        "took {took:?}"
    );
    assert!(c.stderr().contains("shutdown budget"), "{}", c.stderr());
    Ok(())
}

fn second_sigterm_skips_to_sigkill() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new(
        "second",
        &[(
            "stuck",
            "run = \"trap '' TERM INT; echo ignoring; while :; do sleep 0.05; done\"\nstop_timeout = \"60s\"\n",
        )],
    )
    .start();
    c.wait_socket();
    wait_until("the trap to be set", 5 * SECOND, || {
        c.stdout().contains("ignoring")
    });
    let t0 = Instant::now();
    c.signal(Signal::SIGTERM);
    wait_until("shutdown to begin", 5 * SECOND, || {
        c.stderr().contains("shutting down")
    });
    c.signal(Signal::SIGINT);
    let code = c.wait_exit(5 * SECOND);
    assert_eq!(code, 1, "{}", c.stderr());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    Ok(())
}

fn orphans_get_sigterm_at_shutdown() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("orphan");
    let mark = tmp.path("orphan-term");
    // The orphan leaves the service's session, so only the final sweep of
    // the namespace can reach it.
    let svc = format!(
        r#"run = """
setsid sh -c 'trap "echo got TERM > {mark}; exit 0" TERM; echo orphan up; while :; do sleep 0.05; done' &
exec sleep 1000
"""
"#,
        mark = mark.display()
    );
    let mut c = Setup::new("orphan", &[("parent", &svc)]).start();
    c.wait_socket();
    wait_until("the orphan", 5 * SECOND, || {
        c.stdout().contains("orphan up")
    });
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(5 * SECOND), 0, "{}", c.stderr());
    assert_eq!(tmp.read("orphan-term").trim(), "got TERM");
    Ok(())
}

fn output_is_prefixed_and_stderr_stays_stderr() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new(
        "output",
        &[
            ("a", "run = \"echo to-out; echo to-err >&2; printf 'no newline'\"\nrestart = \"never\"\n"),
            ("longer-name", "run = \"echo hello\"\nrestart = \"never\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("a", "exited", 5 * SECOND);
    c.wait_state("longer-name", "exited", 5 * SECOND);
    c.signal(Signal::SIGTERM);
    c.wait_exit(5 * SECOND);
    let out = c.stdout();
    assert!(out.contains("a           | to-out\n"), "{out:?}");
    assert!(
        out.contains("a           | no newline\n"),
        "final partial line flushed: {out:?}"
    );
    assert!(out.contains("longer-name | hello\n"), "{out:?}");
    assert!(!out.contains("to-err"), "{out:?}");
    assert!(
        c.stderr().contains("a           | to-err\n"),
        "{}",
        c.stderr()
    );
    Ok(())
}

fn disabled_service_starts_only_on_request() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "disabled",
        &[(
            "later",
            "command = [\"sleep\", \"1000\"]\nenabled = false\n",
        )],
    )
    .start();
    c.wait_socket();
    let s = c.service("later");
    assert_eq!(
        (s["state"].as_str(), s["enabled"].as_bool()),
        (Some("stopped"), Some(false))
    );
    let out = c.svctl(&["start", "later"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("later: running (pid "),
        "{out:?}"
    );
    Ok(())
}

fn shutdown_with_stubborn_quitting_and_respawning_services() -> TestResult {
    require_pid_namespace()?;
    // One ignores SIGTERM, one exits by itself as the stop begins, one
    // answers SIGTERM by starting a new child and carrying on.
    let mut c = Setup::new(
        "mixedstop",
        &[
            ("stubborn", "run = \"trap '' TERM; while :; do sleep 0.05; done\"\nstop_timeout = \"500ms\"\n"),
            ("quitter", "run = \"trap 'exit 0' TERM; while :; do sleep 0.05; done\"\n"),
            (
                "phoenix",
                "run = \"trap 'sleep 1000 &' TERM; while :; do sleep 0.05; done\"\nstop_timeout = \"500ms\"\n",
            ),
        ],
    )
    .env("CORRAL_SHUTDOWN_TIMEOUT", "3s")
    .start();
    c.wait_socket();
    for s in ["stubborn", "quitter", "phoenix"] {
        c.wait_state(s, "running", 5 * SECOND);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    c.signal(nix::sys::signal::Signal::SIGTERM);
    let code = c.wait_exit(10 * SECOND);
    let took = t0.elapsed();
    assert_eq!(
        code,
        1,
        "two services needed SIGKILL: exit 1\n{}",
        c.stderr()
    );
    assert!(
        took < std::time::Duration::from_secs(3),
        "within the budget: {took:?}"
    );
    assert!(
        took >= std::time::Duration::from_millis(500),
        "stop_timeout was honoured: {took:?}"
    );
    Ok(())
}

fn stopping_a_dependency_says_what_it_took_down_and_starting_it_brings_them_back() -> TestResult {
    require_pid_namespace()?;
    // `svctl stop db` used to print only `db: stopped` while app stopped
    // too, and `svctl start db` left app down.
    let c = Setup::new(
        "cascade",
        &[
            ("setup", "type = \"oneshot\"\nrun = \"true\"\n"),
            (
                "db",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"setup\"]\n",
            ),
            (
                "app",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"db\"]\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    assert!(c.svctl(&["wait"]).status.success());
    let said = |out: std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let out = said(c.svctl(&["stop", "db"]));
    assert!(
        out.contains("db: stopped") && out.contains("app: stopped"),
        "{out}"
    );
    let out = said(c.svctl(&["start", "db"]));
    assert!(
        out.contains("db: running") && out.contains("app: running"),
        "{out}"
    );
    assert_eq!(c.service("app")["state"], "running");
    // The same through restart, and from a finished oneshot down.
    let out = said(c.svctl(&["stop", "setup"]));
    for name in ["setup: ", "db: stopped", "app: stopped"] {
        assert!(out.contains(name), "{name}: {out}");
    }
    let out = said(c.svctl(&["restart", "setup"]));
    for name in ["setup: done", "db: running", "app: running"] {
        assert!(out.contains(name), "{name}: {out}");
    }
    // A dependent stopped by name stays down when its requirement starts.
    assert!(c.svctl(&["stop", "app"]).status.success());
    assert!(c.svctl(&["restart", "db"]).status.success());
    assert_eq!(c.service("app")["state"], "stopped");
    Ok(())
}
