//! `svctl events` under a real PID 1: a crash loop and a reload as JSON
//! lines, the name filter, the human form, and a listener that does not
//! read being cut off without slowing corral.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    a_crash_loop_and_a_reload_are_events,
    a_listener_that_never_reads_is_cut_off,
];

fn listen(
    c: &Corral,
    args: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(svctl_link())
        .arg("--socket")
        .arg(&c.socket)
        .arg("events")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// Reads JSON event lines until `want` returns true for one, within 10 s;
/// returns every line read.
fn until(
    out: &mut BufReader<std::process::ChildStdout>,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + 10 * SECOND;
    let mut seen = Vec::new();
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let done = want(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
    panic!("the event never came; saw {seen:#?}");
}

fn a_crash_loop_and_a_reload_are_events() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "events",
        &[
            (
                "crash",
                "run = \"sleep 0.2; exit 3\"\nrestart_delay = \"100ms\"\n",
            ),
            ("web", "run = \"exec sleep 1000\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let (mut all, mut out) = listen(&c, &["--json"]);
    let (mut only_web, mut web_out) = listen(&c, &["--json", "web"]);
    // Two turns of the crash loop, each with its exit code.
    let seen = until(&mut out, |v| v["event"] == "exited");
    let seen2 = until(&mut out, |v| v["event"] == "exited");
    for v in seen.iter().chain(&seen2) {
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        assert_eq!(v["service"], "crash", "{v}");
    }
    let exit = seen2.last().unwrap();
    assert_eq!(exit["exit"], serde_json::json!({"code": 3}));
    assert!(exit["pid"].as_i64().is_some());
    assert!(
        seen2.iter().any(|v| v["event"] == "started")
            && seen2
                .iter()
                .any(|v| v["event"] == "state" && v["from"] == "backoff" && v["to"] == "starting"),
        "{seen2:#?}"
    );
    // A reload: its plan, then the new service.
    c.dir
        .write("services.d/extra.toml", "run = \"exec sleep 1000\"\n");
    assert!(c.svctl(&["reload"]).status.success());
    let seen = until(&mut out, |v| v["event"] == "added");
    let plan = seen
        .iter()
        .find(|v| v["event"] == "reload")
        .expect("no reload event");
    assert_eq!(plan["service"], serde_json::Value::Null);
    assert!(
        plan["plan"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("extra")),
        "{plan}"
    );
    assert_eq!(seen.last().unwrap()["service"], "extra");
    // The filtered listener heard nothing of crash or the reload: its first
    // event is web's own.
    assert!(c.svctl(&["restart", "web"]).status.success());
    let web = until(&mut web_out, |v| v["event"] == "started");
    assert!(web.iter().all(|v| v["service"] == "web"), "{web:#?}");
    // The human form: one readable line.
    let (mut human, mut human_out) = listen(&c, &["crash"]);
    let mut line = String::new();
    human_out.read_line(&mut line).unwrap();
    assert!(line.contains(" crash "), "{line}");
    for child in [&mut all, &mut only_web, &mut human] {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

fn a_listener_that_never_reads_is_cut_off() -> TestResult {
    require_pid_namespace()?;
    // Fast churn: many events a second, from several services so a busy
    // machine still makes the megabyte in seconds.
    let churn = "run = \"exit 1\"\nrestart_delay = \"1ms\"\nrestart_delay_max = \"1ms\"\nrestart_limit = 0\n";
    let names: Vec<String> = (0..8).map(|i| format!("churn{i}")).collect();
    let services: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), churn)).collect();
    let c = Setup::new("events-slow", &services).start();
    c.wait_socket();
    // A raw client that asks and then never reads.
    use std::io::Write;
    let mut stuck = std::os::unix::net::UnixStream::connect(&c.socket).unwrap();
    stuck
        .write_all(b"{\"version\":1,\"verb\":\"events\",\"names\":[]}\n")
        .unwrap();
    wait_until("the cut-off", 60 * SECOND, || {
        c.stderr()
            .contains("svctl events reads too slowly; cutting it off")
    });
    // corral answered status throughout.
    let started = Instant::now();
    assert!(c.svctl(&["status"]).status.success());
    assert!(started.elapsed() < 2 * SECOND);
    // Whichever came first, falling a megabyte behind or reading nothing
    // for the write timeout, the connection is closed: reading it now
    // ends at EOF rather than hanging as a live stream would.
    use std::io::Read;
    stuck.set_read_timeout(Some(30 * SECOND)).unwrap();
    let mut rest = Vec::new();
    stuck
        .read_to_end(&mut rest)
        .expect("corral closes a listener it cut off");
    Ok(())
}
