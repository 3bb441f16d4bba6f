//! svctl against a real corral: every verb, its output and exit codes, and
//! configuration errors as the binary reports them.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    status_table_and_json,
    start_stop_restart_wait_for_their_state,
    signal_reaches_the_service,
    errors_have_messages_and_exit_codes,
    start_times_out_naming_what_it_waits_for,
    shutdown_verb_and_corral_ctl,
    bad_config_starts_nothing_and_lists_every_error,
    check_validates_without_starting,
    socket_path_that_is_a_file_is_left_alone,
];

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_table_and_json() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "status",
        &[
            ("db", "command = [\"sleep\", \"1000\"]\nuser = \"nobody\"\n"),
            ("once", "run = \"exit 3\"\nrestart = \"never\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("once", "exited", 5 * SECOND);
    let db = c.wait_state("db", "running", 5 * SECOND);
    for key in [
        "name",
        "state",
        "pid",
        "restarts",
        "last_exit",
        "uptime_ms",
        "enabled",
        "user",
    ] {
        assert!(db.get(key).is_some(), "missing {key} in {db}");
    }
    assert!(db["pid"].as_i64().unwrap() > 1);
    assert_eq!(c.service("once")["pid"], serde_json::Value::Null);
    assert_eq!(c.service("once")["last_exit"]["code"], 3);
    let (out, _) = text(&c.svctl(&["status"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("STATE")
            && lines[0].contains("LAST EXIT"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("db ") && l.contains("running")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("once ") && l.contains("exited") && l.contains("exit 3")),
        "{out}"
    );
    let (out, _) = text(&c.svctl(&["status", "once"]));
    assert_eq!(out.lines().count(), 2, "only the named service:\n{out}");
    Ok(())
}

fn start_stop_restart_wait_for_their_state() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "verbs",
        &[
            ("db", "command = [\"sleep\", \"1000\"]\n"),
            (
                "app",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"db\"]\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    let old = c.service("db")["pid"].as_i64().unwrap();
    let out = c.svctl(&["restart", "db"]);
    assert!(out.status.success(), "{out:?}");
    let new = c.service("db")["pid"].as_i64().unwrap();
    assert_ne!(old, new, "restart gives a new process");
    assert_eq!(c.service("db")["restarts"], 1);
    assert_eq!(
        c.service("app")["state"],
        "running",
        "restart touches only db"
    );
    // stop returns when stopped, and takes the dependent down first.
    let out = c.svctl(&["stop", "db"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out).0,
        "db: stopped\napp: stopped\n",
        "every service it stopped"
    );
    assert_eq!(c.service("app")["state"], "stopped");
    // start of the dependent brings its requirement back.
    let out = c.svctl(&["start", "app"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(c.service("db")["state"], "running");
    assert_eq!(c.service("app")["state"], "running");
    Ok(())
}

fn signal_reaches_the_service() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "sig",
        &[
            (
                "web",
                "run = \"trap 'echo reloading' HUP; echo ready; while :; do sleep 0.02; done\"\n",
            ),
            ("off", "command = [\"sleep\", \"1\"]\nenabled = false\n"),
        ],
    )
    .start();
    c.wait_socket();
    wait_until("ready", 5 * SECOND, || c.stdout().contains("ready"));
    let out = c.svctl(&["signal", "HUP", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out).0, "sent SIGHUP to web\n", "names the service");
    // No process, no uptime (it was set for stopped services).
    assert_eq!(c.service("off")["uptime_ms"], serde_json::Value::Null);
    wait_until("the reload", 5 * SECOND, || {
        c.stdout().contains("web | reloading")
    });
    assert_eq!(c.service("web")["restarts"], 0);
    let out = c.svctl(&["signal", "HUP", "off"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("not running"), "{out:?}");
    let out = c.svctl(&["signal", "SIGNOPE", "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown signal"), "{out:?}");
    Ok(())
}

fn errors_have_messages_and_exit_codes() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new("errs", &[("db", "command = [\"sleep\", \"1000\"]\n")]).start();
    c.wait_socket();
    for verb in ["status", "start", "stop", "restart"] {
        let out = c.svctl(&[verb, "nosuch"]);
        assert_eq!(out.status.code(), Some(2), "{verb}: {out:?}");
        assert!(
            text(&out)
                .1
                .contains("unknown service `nosuch` (known: db)"),
            "{verb}: {out:?}"
        );
    }
    let out = c.svctl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown verb"), "{out:?}");
    let out = c.svctl(&["start"]);
    assert_eq!(out.status.code(), Some(2));
    // A socket nobody listens on.
    let missing = c.dir.path("nowhere.sock");
    let out = svctl(&missing, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out).1;
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("Is corral running"),
        "{err}"
    );
    // A raw client speaking another protocol version gets an answer.
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&c.socket).unwrap();
    s.write_all(b"{\"version\":99,\"verb\":\"status\"}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("version mismatch"), "{line}");
    // Not JSON at all: an answer too, not a dropped connection.
    let mut s = std::os::unix::net::UnixStream::connect(&c.socket).unwrap();
    s.write_all(b"hello corral\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(
        line.contains("\"kind\":\"bad_request\"") && line.contains("malformed request"),
        "{line}"
    );
    Ok(())
}

fn start_times_out_naming_what_it_waits_for() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "timeout",
        &[
            (
                "slow",
                "command = [\"/nonexistent\"]\nrestart_delay = \"20s\"\nenabled = false\n",
            ),
            (
                "app",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"slow\"]\nenabled = false\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    let out = c.svctl(&["--timeout", "500ms", "start", "app"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out).1;
    assert!(
        err.contains("timed out") && err.contains("app is starting (waiting for slow)"),
        "{err}"
    );
    Ok(())
}

fn shutdown_verb_and_corral_ctl() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new("shutdown", &[("db", "command = [\"sleep\", \"1000\"]\n")]).start();
    c.wait_socket();
    let out = Command::new(corral_bin())
        .args(["ctl", "--socket"])
        .arg(&c.socket)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).0.contains("db"),
        "{out:?}"
    );
    let out = c.svctl(&["shutdown"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(c.wait_exit(5 * SECOND), 0);
    Ok(())
}

fn bad_config_starts_nothing_and_lists_every_error() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("badcfg");
    let good = format!("run = \"touch {}\"\n", tmp.path("started").display());
    let mut c = Setup::new(
        "badcfg",
        &[
            ("good", &good),
            ("typo", "command = [\"/bin/true\"]\nreqiures = [\"good\"]\n"),
            (
                "ghost",
                "command = [\"/bin/true\"]\nuser = \"no-such-user\"\n",
            ),
            ("loop-a", "run = \"x\"\nrequires = [\"loop-b\"]\n"),
            ("loop-b", "run = \"x\"\nrequires = [\"loop-a\"]\n"),
        ],
    )
    .start();
    assert_eq!(c.wait_exit(5 * SECOND), 2);
    let err = c.stderr();
    let dir = c.services.display().to_string();
    assert!(
        err.contains(&format!(
            "{dir}/typo.toml:2: unknown key `reqiures`: did you mean `requires`?"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{dir}/ghost.toml:2: unknown user `no-such-user`")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{dir}/loop-a.toml:2: dependency cycle: loop-a -> loop-b -> loop-a"
        )),
        "{err}"
    );
    assert!(
        err.contains("3 error(s)") && err.contains("nothing was started"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !tmp.path("started").exists(),
        "a valid service must not start"
    );
    Ok(())
}

fn check_validates_without_starting() -> TestResult {
    // Needs no namespace: nothing is started.
    // Without --services and without the default directory: what corral
    // would do (run no services), not an error.
    if !std::path::Path::new("/etc/corral/services.d").exists() {
        let out = Command::new(corral_bin())
            .arg("check")
            .env_remove("CORRAL_SERVICES_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            text(&out).0.contains("corral would run no services"),
            "{out:?}"
        );
    } else {
        println!("    (check without a directory not tried: /etc/corral/services.d exists here)");
    }
    let tmp = TempDir::new("check");
    tmp.write(
        "ok/db.toml",
        &format!("run = \"touch {}\"\n", tmp.path("ran").display()),
    );
    tmp.write(
        "ok/app.toml",
        "command = [\"/bin/true\"]\nrequires = [\"db\"]\n",
    );
    tmp.write("ok/zz.toml", "command = [\"/bin/true\"]\nenabled = false\n");
    let out = Command::new(corral_bin())
        .arg("check")
        .arg("--services")
        .arg(tmp.path("ok"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out)
            .0
            .contains("3 service(s) valid; start order: db, app, zz (disabled)"),
        "{out:?}"
    );
    assert!(!tmp.path("ran").exists());
    tmp.write("bad/x.toml", "run = \"x\"\nrestart = \"sometimes\"\n");
    let out = Command::new(corral_bin())
        .arg("check")
        .arg("--services")
        .arg(tmp.path("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("x.toml:2: restart = \"sometimes\" is not a policy"),
        "{out:?}"
    );
    let out = Command::new(corral_bin())
        .args(["check", "--services", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

fn socket_path_that_is_a_file_is_left_alone() -> TestResult {
    require_pid_namespace()?;
    let setup =
        Setup::new("notsock", &[("db", "command = [\"sleep\", \"1000\"]\n")]).socket("precious");
    setup.dir.write("precious", "keep me");
    let c = setup.start();
    wait_until("the warning", 5 * SECOND, || {
        c.stderr().contains("is not a socket")
    });
    assert_eq!(c.dir.read("precious"), "keep me");
    wait_until("db to run anyway", 5 * SECOND, || {
        c.stderr().contains("db: started")
    });
    Ok(())
}
