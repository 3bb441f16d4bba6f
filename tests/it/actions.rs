//! `svctl action` against a real corral as PID 1: exit codes, arguments,
//! output streamed while the action runs (stdout and stderr apart, bytes
//! intact, nothing lost to a slow reader), the container log's marked
//! lines, privilege drop, the time limit, signal actions, every refusal,
//! and shutdown during a run.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    exit_code_arguments_and_environment_pass_through,
    output_streams_live_and_stderr_stays_apart,
    binary_output_reaches_a_slow_reader_whole,
    an_action_runs_as_its_user_or_the_services,
    timeout_kills_the_process_group_and_exits_124,
    signal_action_reaches_the_daemon,
    refusals_say_why_with_their_exit_codes,
    shutdown_during_an_action_ends_it_within_the_budget,
    actions_are_listed_with_their_descriptions,
];

/// `svctl ARGS` started, its stdout and stderr pipes to read as it runs.
fn svctl_running(c: &Corral, args: &[&str]) -> std::process::Child {
    Command::new(svctl_link())
        .arg("--socket")
        .arg(&c.socket)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon that says `ready`, then echoes each HUP it gets.
const DAEMON: &str =
    "run = \"trap 'echo got HUP' HUP; echo ready; while :; do sleep 0.02; done\"\n";

fn web(extra: &str) -> String {
    format!("{DAEMON}working_dir = \"/tmp\"\n{extra}")
}

fn exit_code_arguments_and_environment_pass_through() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "act-exit",
        &[(
            "web",
            &web(
                "env = { GREETING = \"hello\" }\n\
                 [actions.validate]\n\
                 run = \"echo \\\"$GREETING $CORRAL_SERVICE $CORRAL_ACTION $0 [$1] [$2] $(pwd)\\\"; exit ${3:-0}\"\n\
                 [actions.argv]\n\
                 command = [\"printf\", \"<%s>\"]\n",
            ),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let out = c.svctl(&["action", "web", "validate", "a b", "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out).0,
        "hello web validate web/validate [a b] [--strict] /tmp\n"
    );
    // The exit code is the action's, whatever it is.
    let out = c.svctl(&["action", "web", "validate", "x", "y", "7"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out).1, "", "a plain exit code adds no message");
    // A command gets the arguments appended, each one word.
    let out = c.svctl(&["action", "web", "argv", "one", "two words", "-v"]);
    assert_eq!(text(&out).0, "<one><two words><-v>");
    // The container log has the same lines, marked with service/action.
    wait_until("the marked line in the log", 5 * SECOND, || {
        c.stdout()
            .contains("web/validate | hello web validate web/validate [a b] [--strict] /tmp")
    });
    // ...and not in the service's own logs.
    let (logs, _) = text(&c.svctl(&["logs", "web"]));
    assert!(!logs.contains("hello"), "{logs}");
    Ok(())
}

fn output_streams_live_and_stderr_stays_apart() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("act-live");
    let go = tmp.path("go");
    let c = Setup::new(
        "act-live",
        &[(
            "web",
            &web(&format!(
                "[actions.slow]\n\
                 run = \"echo first; echo warning >&2; while [ ! -e {} ]; do sleep 0.02; done; echo second\"\n",
                go.display()
            )),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let mut child = svctl_running(&c, &["action", "web", "slow"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line, "warning\n", "stderr comes on svctl's stderr");
    // Both arrived while the action still waits for `go`.
    assert!(child.try_wait().unwrap().is_none(), "svctl ended early");
    std::fs::write(&go, "").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    let mut err_rest = String::new();
    stderr.read_to_string(&mut err_rest).unwrap();
    assert_eq!(err_rest, "");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    Ok(())
}

fn binary_output_reaches_a_slow_reader_whole() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("act-binary");
    // 4 MiB that is not UTF-8, more than any buffer on the way holds.
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let blob = tmp.path("blob");
    std::fs::write(&blob, &data).unwrap();
    let c = Setup::new(
        "act-binary",
        &[(
            "db",
            &format!(
                "{DAEMON}[log]\non_full = \"drop\"\n[actions.dump]\ncommand = [\"cat\", \"{}\"]\n",
                blob.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("db", "running", 5 * SECOND);
    let mut child = svctl_running(&c, &["action", "db", "dump"]);
    // A reader that is late: corral holds the action's pipe meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "cat could not finish");
    // svctl still answers status while the action waits.
    let started = Instant::now();
    assert!(c.svctl(&["status"]).status.success());
    assert!(started.elapsed() < 2 * SECOND);
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes differ");
    Ok(())
}

fn an_action_runs_as_its_user_or_the_services() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "act-user",
        &[(
            "web",
            &web("user = \"nobody\"\n\
                  [actions.whoami]\nrun = \"id -u; id -g\"\n\
                  [actions.as-root]\nrun = \"id -u\"\nuser = \"root\"\n\
                  [actions.as-group]\nrun = \"id -u; id -g\"\ngroup = \"0\"\n"),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let nobody = c.service("web")["user"].clone();
    assert_eq!(nobody, "nobody");
    let (out, _) = text(&c.svctl(&["action", "web", "whoami"]));
    let ids: Vec<&str> = out.lines().collect();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let nobody_ids: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .unwrap()
        .split(':')
        .skip(2)
        .take(2)
        .collect();
    assert_eq!(ids, nobody_ids, "the service's user and group");
    assert_eq!(text(&c.svctl(&["action", "web", "as-root"])).0, "0\n");
    let (out, _) = text(&c.svctl(&["action", "web", "as-group"]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [nobody_ids[0], "0"],
        "the service's user with the action's group"
    );
    Ok(())
}

fn timeout_kills_the_process_group_and_exits_124() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "act-timeout",
        &[(
            "web",
            &web("[actions.hang]\n\
                 run = \"trap '' TERM; sleep 1000 & echo started; wait\"\n\
                 timeout = \"500ms\"\n"),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let started = Instant::now();
    let out = c.svctl(&["action", "web", "hang"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "started\n");
    assert!(
        stderr.contains("web/hang: timed out after 0.5s"),
        "{stderr}"
    );
    // It ignores SIGTERM: SIGKILL came KILL_AFTER (5 s) later, for the
    // whole group, the background sleep included.
    assert!(took >= Duration::from_millis(5400), "{took:?}");
    // SIGKILL went to the whole group, the background sleep included;
    // its death may trail the shell's by a moment.
    wait_until("the action's background child to die", 2 * SECOND, || {
        !c.namespace_processes().into_iter().any(|(pid, state, _)| {
            state != 'Z'
                && std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                    == b"sleep\x001000\x00"
        })
    });
    wait_until("the warning", 5 * SECOND, || {
        c.stderr()
            .contains("web/hang: still running after its timeout")
    });
    // A timed-out action may run again.
    assert_eq!(c.service("web")["state"], "running");
    Ok(())
}

fn signal_action_reaches_the_daemon() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "act-signal",
        &[(
            "web",
            &web("[actions.reload]\nsignal = \"SIGHUP\"\ndescription = \"re-read the config\"\n"),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("ready", 5 * SECOND, || c.stdout().contains("web | ready"));
    let pid = c.service("web")["pid"].as_i64().unwrap();
    let out = c.svctl(&["action", "web", "reload"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out).0,
        format!("web/reload: sent SIGHUP to web (pid {pid})\n")
    );
    wait_until("the daemon's answer", 5 * SECOND, || {
        c.stdout().contains("web | got HUP")
    });
    assert_eq!(c.service("web")["restarts"], 0);
    let out = c.svctl(&["action", "web", "reload", "now"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    Ok(())
}

fn refusals_say_why_with_their_exit_codes() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("act-refuse");
    let go = tmp.path("go");
    let c = Setup::new(
        "act-refuse",
        &[
            (
                "web",
                &web(&format!(
                    "[actions.long]\nrun = \"echo on; while [ ! -e {} ]; do sleep 0.02; done\"\n\
                     [actions.validate]\nrun = \"true\"\n",
                    go.display()
                )),
            ),
            (
                "off",
                "run = \"sleep 1000\"\nenabled = false\n\
                 [actions.validate]\nrun = \"true\"\n\
                 [actions.seed]\nrun = \"echo seeded\"\nwhen = \"any\"\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let refused = |args: &[&str], code: i32, says: &str| {
        let out = c.svctl(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let (_, err) = text(&out);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refused(
        &["action", "nosuch", "validate"],
        2,
        "unknown service `nosuch` (known: ",
    );
    refused(
        &["action", "web", "backup"],
        2,
        "web has no action `backup` (its actions: long, validate)",
    );
    refused(&["action", "web"], 2, "needs a service and an action name");
    refused(
        &["--timeout", "5s", "action", "web", "long"],
        2,
        "the action's `timeout` key",
    );
    refused(
        &["action", "off", "validate"],
        1,
        "off is not running (stopped): off/validate runs only while it runs",
    );
    // when = "any" runs whatever the state.
    let out = c.svctl(&["action", "off", "seed"]);
    assert_eq!(text(&out).0, "seeded\n", "{out:?}");
    // One run at a time: a second is refused while the first goes on.
    let mut first = svctl_running(&c, &["action", "web", "long"]);
    let mut line = String::new();
    BufReader::new(first.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "on\n");
    refused(
        &["action", "web", "long"],
        1,
        "web/long is already running (pid ",
    );
    // Another action of the same service is not held up.
    assert_eq!(
        c.svctl(&["action", "web", "validate"]).status.code(),
        Some(0)
    );
    let listed = c.svctl(&["actions", "web"]);
    assert!(text(&listed).0.contains("long (running)"), "{listed:?}");
    std::fs::write(&go, "").unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    // The read-only group may list actions but not run them.
    let setup = Setup::new(
        "act-ro",
        &[("web", &web("[actions.validate]\nrun = \"true\"\n"))],
    )
    .socket("run/corral/control.sock")
    .env("CORRAL_CONTROL_GROUP", "65534");
    std::fs::create_dir_all(setup.dir.path("run")).unwrap();
    std::fs::set_permissions(
        setup.dir.path("run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ro = setup.start();
    ro.wait_socket();
    ro.wait_state("web", "running", 5 * SECOND);
    let nogroup = 65534;
    let out = svctl_as(
        65534,
        nogroup,
        &[nogroup],
        Some(&ro.socket),
        &[],
        &["actions"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).0.contains("validate"));
    let out = svctl_as(
        65534,
        nogroup,
        &[nogroup],
        Some(&ro.socket),
        &[],
        &["action", "web", "validate"],
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(text(&out).1.contains("may only use"), "{out:?}");
    Ok(())
}

fn shutdown_during_an_action_ends_it_within_the_budget() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new(
        "act-shutdown",
        &[(
            "web",
            &web("[actions.backup]\nrun = \"trap 'echo interrupted; exit 9' TERM; echo copying; while :; do sleep 0.02; done\"\n"),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let mut child = svctl_running(&c, &["action", "web", "backup"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "copying\n");
    let started = Instant::now();
    c.signal(nix::sys::signal::Signal::SIGTERM);
    let code = c.wait_exit(10 * SECOND);
    assert_eq!(code, 0, "a clean shutdown: the action ended on SIGTERM");
    assert!(started.elapsed() < 3 * SECOND, "{:?}", started.elapsed());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "interrupted\n");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(9), "{err}");
    assert!(
        err.contains("web/backup: ended by corral's shutdown"),
        "{err}"
    );
    Ok(())
}

fn actions_are_listed_with_their_descriptions() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "act-list",
        &[
            (
                "web",
                &web(
                    "[actions.validate]\nrun = \"nginx -t\"\ndescription = \"check the config\"\n\
                      [actions.reload]\nsignal = \"HUP\"\n",
                ),
            ),
            ("db", "run = \"sleep 1000\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    let (out, _) = text(&c.svctl(&["actions"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SERVICE  ACTION"), "{out}");
    assert!(
        lines.iter().any(|l| l.contains("validate")
            && l.contains("command")
            && l.contains("1m00s")
            && l.ends_with("check the config")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("reload") && l.contains("signal"))
    );
    let out = c.svctl(&["actions", "--json", "web"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &doc["actions"][0];
    assert_eq!(first["service"], "web");
    assert_eq!(first["name"], "reload");
    assert_eq!(first["kind"], "signal");
    assert_eq!(first["when"], "running");
    assert_eq!(first["timeout_ms"], serde_json::Value::Null);
    assert_eq!(doc["actions"][1]["timeout_ms"], 60000);
    assert_eq!(doc["actions"][1]["running"], false);
    assert_eq!(
        text(&c.svctl(&["actions", "--names", "web"])).0,
        "reload\nvalidate\n"
    );
    assert_eq!(
        c.service("web")["actions"],
        serde_json::json!(["reload", "validate"])
    );
    assert_eq!(c.service("db")["actions"], serde_json::json!([]));
    Ok(())
}
