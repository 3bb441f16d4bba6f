//! Readiness, oneshots and health under a real PID 1: dependents wait for
//! each readiness method (order asserted by timestamps), oneshots gate and
//! fail, health turns unhealthy and restarts, svctl wait and health.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    dependents_wait_for_file_fd_exec_readiness,
    dependent_waits_for_tcp_readiness,
    notify_readiness_believes_only_the_service,
    oneshot_renders_config_before_dependent_reads_it,
    failing_oneshot_blocks_and_stops_the_container,
    optional_oneshot_failure_keeps_running,
    unhealthy_service_is_restarted,
    svctl_wait_and_health_exit_codes,
    not_ready_in_time_is_restarted,
    main_command_waits_for_readiness,
    exec_check_printing_more_than_a_pipe_holds_does_not_stall,
    health_ignores_a_service_stopped_on_purpose,
    http_checks_want_a_2xx_or_3xx_answer,
    tcp_expect_waits_for_the_greeting_not_the_listen,
];

/// A dependent that logs when it starts: `NAME-start <ns>`.
fn dependent(name: &str, requires: &str, log: &std::path::Path) -> String {
    format!(
        "run = \"echo {name}-start $(date +%s%N) >> {log}; exec sleep 1000\"\nrequires = [\"{requires}\"]\n",
        log = log.display()
    )
}

fn dependents_wait_for_file_fd_exec_readiness() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("ready3");
    let log = tmp.path("log");
    // Written by root and by nobody.
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let flag = tmp.path("flag");
    let file_svc = format!(
        "run = \"sleep 0.3; echo file-ready $(date +%s%N) >> {log}; touch {flag}; exec sleep 1000\"\n[ready]\nfile = \"{flag}\"\ninterval = \"20ms\"\n",
        log = log.display(),
        flag = flag.display()
    );
    let fd_svc = format!(
        "run = \"sleep 0.3; echo fd-ready $(date +%s%N) >> {log}; echo >&3; exec sleep 1000\"\n[ready]\nfd = 3\n",
        log = log.display()
    );
    let exec_flag = tmp.path("exec-flag");
    let exec_svc = format!(
        "run = \"sleep 0.3; echo exec-ready $(date +%s%N) >> {log}; touch {f}; exec sleep 1000\"\nuser = \"nobody\"\n[ready]\nexec = \"test -f {f} && test $(id -u) = 65534\"\ninterval = \"20ms\"\n",
        log = log.display(),
        f = exec_flag.display()
    );
    let c = Setup::new(
        "ready3",
        &[
            ("filesvc", &file_svc),
            ("fdsvc", &fd_svc),
            ("execsvc", &exec_svc),
            ("after-file", &dependent("after-file", "filesvc", &log)),
            ("after-fd", &dependent("after-fd", "fdsvc", &log)),
            ("after-exec", &dependent("after-exec", "execsvc", &log)),
        ],
    )
    .start();
    c.wait_socket();
    // Before readiness the dependents wait, with a note saying so.
    let early = c.service("after-fd");
    assert_eq!(early["state"], "starting", "{early}");
    assert_eq!(early["note"], "waiting for fdsvc");
    let out = c.svctl(&["wait", "--timeout", "10s"]);
    assert!(out.status.success(), "{out:?}");
    // Spawned is not yet written: wait for the dependents' own lines.
    wait_until("three dependents", 5 * SECOND, || {
        tmp.read("log").matches("-start").count() == 3
    });
    let text = tmp.read("log");
    for kind in ["file", "fd", "exec"] {
        let ready = stamp(&text, &format!("{kind}-ready"));
        let started = stamp(&text, &format!("after-{kind}-start"));
        assert!(
            ready < started,
            "after-{kind} started before {kind}svc was ready:\n{text}"
        );
    }
    let s = c.service("fdsvc");
    assert_eq!(s["ready"], true);
    assert!(s["ready_ms"].as_u64().unwrap() >= 250, "{s}");
    Ok(())
}

fn dependent_waits_for_tcp_readiness() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("readytcp");
    let log = tmp.path("log");
    // The namespace shares our network: the test itself is the database
    // that starts listening late.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let db = format!(
        "command = [\"sleep\", \"1000\"]\n[ready]\ntcp = \"127.0.0.1:{port}\"\ninterval = \"20ms\"\n"
    );
    let c = Setup::new(
        "readytcp",
        &[("db", &db), ("app", &dependent("app", "db", &log))],
    )
    .start();
    c.wait_socket();
    c.wait_state("db", "running", 5 * SECOND);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        c.service("app")["state"],
        "starting",
        "app must wait for the port"
    );
    assert_eq!(c.service("db")["ready"], false);
    let listening_at = now_ns();
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    c.wait_state("app", "running", 5 * SECOND);
    wait_until("app's own start line", 5 * SECOND, || {
        tmp.read("log").contains("app-start")
    });
    assert!(stamp(&tmp.read("log"), "app-start") > listening_at);
    Ok(())
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Sends a notify datagram to an `@abstract` NOTIFY_SOCKET address.
fn send_notify(addr: &str, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let name = addr.strip_prefix('@').unwrap_or(addr);
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let to = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(message.as_bytes(), &to).map(|_| ())
}

fn notify_readiness_believes_only_the_service() -> TestResult {
    require_pid_namespace()?;
    if Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .map_or(true, |s| !s.success())
    {
        return Err(Skip(
            "needs python3 to send sd_notify datagrams from a service".into(),
        ));
    }
    let tmp = TempDir::new("notify");
    let go = tmp.path("go");
    let sender = "import os,socket; a=os.environ['NOTIFY_SOCKET']; a='\\\\0'+a[1:] if a[0]=='@' else a; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'READY=1\\\\nSTATUS=serving requests', a)";
    let svc = format!(
        "run = \"echo $NOTIFY_SOCKET > {env}; while [ ! -e {go} ]; do sleep 0.02; done; python3 -c \\\"{sender}\\\"; exec sleep 1000\"\n[ready]\nnotify = true\n",
        env = tmp.path("env").display(),
        go = go.display()
    );
    let c = Setup::new(
        "notify",
        &[
            ("svc", &svc),
            (
                "app",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"svc\"]\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    wait_until("NOTIFY_SOCKET to be set", 5 * SECOND, || {
        tmp.read("env").starts_with('@')
    });
    let addr = tmp.read("env").trim().to_string();
    // A process outside the service claims readiness: ignored.
    send_notify(&addr, "READY=1\nSTATUS=forged").unwrap();
    wait_until("the forged message to be rejected", 5 * SECOND, || {
        c.stderr().contains("ignoring a notify message")
    });
    let s = c.service("svc");
    assert_eq!(
        (s["ready"].as_bool(), s["status_text"].as_str()),
        (Some(false), None),
        "{s}"
    );
    assert_eq!(c.service("app")["state"], "starting");
    // The service itself says so: believed.
    std::fs::write(&go, "").unwrap();
    c.wait_state("app", "running", 10 * SECOND);
    let s = c.service("svc");
    assert_eq!(s["ready"], true);
    assert_eq!(s["status_text"], "serving requests");
    Ok(())
}

fn oneshot_renders_config_before_dependent_reads_it() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("render");
    let conf = tmp.path("etc/app.conf");
    let rundir = tmp.path("run/app");
    let volume = tmp.path("volume");
    let template = tmp.path("template");
    std::fs::create_dir_all(&volume).unwrap();
    tmp.write("template/seed.db", "seed data");
    // Three firstboot jobs: render config from the environment (as the
    // app's user), make a runtime directory owned by that user (as root),
    // and fill an empty volume from a template.
    let render = format!(
        r#"type = "oneshot"
env = {{ APP_PORT = "8080" }}
user = "nobody"
run = """
echo "listen = $APP_PORT" > {conf}
echo "owner = $(id -un)" >> {conf}
"""
requires = ["dirs"]
"#,
        conf = conf.display()
    );
    let dirs = format!(
        "type = \"oneshot\"\nrun = \"mkdir -p {rundir} {etc} && chown nobody {rundir} {etc}\"\n",
        rundir = rundir.display(),
        etc = conf.parent().unwrap().display()
    );
    let seed = format!(
        "type = \"oneshot\"\nrun = \"[ -n \\\"$(ls -A {vol})\\\" ] || cp -a {tpl}/. {vol}/\"\n",
        vol = volume.display(),
        tpl = template.display()
    );
    let app = format!(
        "run = \"cat {conf} {vol}/seed.db; echo; exec sleep 1000\"\nrequires = [\"render\", \"seed\"]\nuser = \"nobody\"\n",
        conf = conf.display(),
        vol = volume.display()
    );
    let c = Setup::new(
        "render",
        &[
            ("dirs", &dirs),
            ("render", &render),
            ("seed", &seed),
            ("app", &app),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    wait_until("app's output", 5 * SECOND, || {
        c.stdout().contains("seed data")
    });
    let out = c.stdout();
    assert!(
        out.contains("app    | listen = 8080") && out.contains("app    | owner = nobody"),
        "{out}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&rundir).unwrap().uid(),
        65534,
        "runtime dir owned by the app's user"
    );
    let s = c.service("render");
    assert_eq!(
        (
            s["state"].as_str(),
            s["kind"].as_str(),
            s["ready"].as_bool()
        ),
        (Some("exited"), Some("oneshot"), Some(true))
    );
    let out = c.svctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("done"),
        "{out:?}"
    );
    assert!(
        c.stderr().contains("all 4 services ready in"),
        "{}",
        c.stderr()
    );
    Ok(())
}

fn main_command_waits_for_readiness() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("mainready");
    let flag = tmp.path("db-ready");
    let db = format!(
        "run = \"sleep 0.3; touch {f}; exec sleep 1000\"\n[ready]\nfile = \"{f}\"\ninterval = \"20ms\"\n",
        f = flag.display()
    );
    let main = format!(
        "test -e {} && echo db was ready || echo db was NOT ready",
        flag.display()
    );
    let mut c = Setup::new("mainready", &[("db", &db)])
        .main(&["sh", "-c", &main])
        .start();
    assert_eq!(c.wait_exit(10 * SECOND), 0, "{}", c.stderr());
    assert!(c.stdout().contains("db was ready"), "{}", c.stdout());
    Ok(())
}

fn failing_oneshot_blocks_and_stops_the_container() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("oneshotfail");
    let app = format!(
        "run = \"touch {}; exec sleep 1000\"\nrequires = [\"setup\"]\n",
        tmp.path("app-ran").display()
    );
    let mut c = Setup::new(
        "oneshotfail",
        &[
            (
                "setup",
                "type = \"oneshot\"\nrun = \"echo cannot render; exit 4\"\n",
            ),
            ("app", &app),
            ("other", "command = [\"sleep\", \"1000\"]\n"),
        ],
    )
    .start();
    assert_eq!(c.wait_exit(10 * SECOND), 3, "{}", c.stderr());
    assert!(
        !tmp.path("app-ran").exists(),
        "a dependent of a failed oneshot must not start"
    );
    let err = c.stderr();
    assert!(
        err.contains("setup: required oneshot failed (exit code 4"),
        "{err}"
    );
    assert!(
        err.contains("optional = true"),
        "the message says how to carry on: {err}"
    );
    Ok(())
}

fn optional_oneshot_failure_keeps_running() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "optional",
        &[
            (
                "setup",
                "type = \"oneshot\"\noptional = true\nrun = \"exit 1\"\n",
            ),
            (
                "app",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"setup\"]\n",
            ),
            (
                "gated",
                "command = [\"sleep\", \"1000\"]\nrequires = [\"strict\"]\n",
            ),
            (
                "strict",
                "type = \"oneshot\"\nrun = \"exit 2\"\nenabled = false\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    assert_eq!(c.service("setup")["state"], "failed");
    // A required oneshot started by hand that fails blocks, and says why.
    let out = c.svctl(&["start", "strict"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let s = c.wait_state("gated", "blocked", 5 * SECOND);
    assert!(
        s["note"]
            .as_str()
            .unwrap()
            .contains("strict failed: exit code 2"),
        "{s}"
    );
    Ok(())
}

fn unhealthy_service_is_restarted() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("health");
    let flag = tmp.path("healthy");
    std::fs::write(&flag, "").unwrap();
    let svc = format!(
        "command = [\"sleep\", \"1000\"]\n[health]\nexec = \"test -f {} && echo fine || {{ echo flag missing; exit 1; }}\"\ninterval = \"50ms\"\nretries = 2\non_unhealthy = \"restart\"\n",
        flag.display()
    );
    let c = Setup::new("health", &[("web", &svc)]).start();
    c.wait_socket();
    wait_until("healthy", 5 * SECOND, || {
        c.service("web")["health"] == "healthy"
    });
    assert_eq!(c.service("web")["health_output"], "fine");
    assert!(c.svctl(&["health"]).status.success());
    let first = c.service("web")["pid"].as_i64().unwrap();
    std::fs::remove_file(&flag).unwrap();
    wait_until("a restart", 5 * SECOND, || {
        c.service("web")["restarts"] == 1
    });
    assert!(
        c.stderr()
            .contains("web: unhealthy after 2 failed checks: flag missing"),
        "{}",
        c.stderr()
    );
    let s = c.wait_state("web", "running", 5 * SECOND);
    assert_ne!(s["pid"].as_i64().unwrap(), first);
    Ok(())
}

fn svctl_wait_and_health_exit_codes() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("waithealth");
    let flag = tmp.path("up");
    let db = format!(
        "command = [\"sleep\", \"1000\"]\n[ready]\nfile = \"{}\"\ninterval = \"20ms\"\ntimeout = \"1h\"\n",
        flag.display()
    );
    let c = Setup::new(
        "waithealth",
        &[
            ("db", &db),
            (
                "cron",
                "command = [\"sleep\", \"1000\"]\nrestart = \"never\"\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    c.wait_state("db", "running", 5 * SECOND);
    let out = c.svctl(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("not healthy") && err.contains("db: running, not ready yet"),
        "{err}"
    );
    assert!(!err.contains("cron"), "{err}");
    let out = c.svctl(&["wait", "--timeout", "300ms", "db"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("still waiting: db is running (waiting for readiness (last check: "),
        "{out:?}"
    );
    // cron alone is ready already.
    assert!(c.svctl(&["wait", "cron"]).status.success());
    std::fs::write(&flag, "").unwrap();
    let out = c.svctl(&["wait"]);
    assert!(out.status.success(), "{out:?}");
    let out = c.svctl(&["health"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("healthy: 2 enabled service(s) up"),
        "{out:?}"
    );
    // A wanted service that went down makes it unhealthy again (one
    // stopped on purpose does not: health_ignores_a_service_stopped_on_purpose).
    assert!(c.svctl(&["signal", "KILL", "cron"]).status.success());
    c.wait_state("cron", "exited", 5 * SECOND);
    let out = c.svctl(&["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cron: exited (killed by SIGKILL)"),
        "{out:?}"
    );
    Ok(())
}

fn not_ready_in_time_is_restarted() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "readytimeout",
        &[(
            "never",
            "command = [\"sleep\", \"1000\"]\nrestart_delay = \"10ms\"\nrestart_limit = 1\n[ready]\nfile = \"/nonexistent/ready\"\ntimeout = \"200ms\"\ninterval = \"50ms\"\n",
        )],
    )
    .start();
    c.wait_socket();
    let s = c.wait_state("never", "failed", 10 * SECOND);
    assert_eq!(s["restarts"], 1, "{s}");
    // Why, in status and in corral's log at the default level: the last
    // check's reason (it was never said).
    let why = "(last check: /nonexistent/ready: No such file or directory (os error 2))";
    assert!(
        s["note"].as_str().unwrap().contains("not ready within")
            && s["note"].as_str().unwrap().contains(why),
        "{s}"
    );
    assert!(c.stderr().contains(why), "{}", c.stderr());
    Ok(())
}

fn exec_check_printing_more_than_a_pipe_holds_does_not_stall() -> TestResult {
    require_pid_namespace()?;
    // 1 MB of output, then the verdict: a check whose pipe was read only
    // after it exited blocked on its writes until the ready timeout.
    let svc = "command = [\"sleep\", \"1000\"]\n[ready]\nexec = \"seq 1 200000; echo all good\"\ntimeout = \"10s\"\n[health]\nexec = \"seq 1 200000; echo still good\"\ninterval = \"200ms\"\n";
    let c = Setup::new("bigcheck", &[("chatty", svc)]).start();
    c.wait_socket();
    let out = c.svctl(&["--timeout", "8s", "wait", "chatty"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.stderr()
    );
    wait_until("the health check's last line", 5 * SECOND, || {
        c.service("chatty")["health_output"] == "still good"
    });
    Ok(())
}

fn health_ignores_a_service_stopped_on_purpose() -> TestResult {
    require_pid_namespace()?;
    // One debugging session (start a disabled service, stop it again)
    // used to fail the health check for good: `debug: is stopped`.
    let c = Setup::new(
        "stoppedhealth",
        &[
            ("db", "command = [\"sleep\", \"1000\"]\n"),
            (
                "debug",
                "command = [\"sleep\", \"1000\"]\nenabled = false\n",
            ),
        ],
    )
    .start();
    c.wait_socket();
    assert!(c.svctl(&["wait"]).status.success());
    assert!(c.svctl(&["start", "debug"]).status.success());
    assert!(c.svctl(&["stop", "debug"]).status.success());
    let out = c.svctl(&["health"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An enabled service stopped by hand does not count either.
    assert!(c.svctl(&["stop", "db"]).status.success());
    assert!(c.svctl(&["health"]).status.success());
    Ok(())
}

/// A test-side server on 127.0.0.1 that answers every connection with
/// `answer()` (read each time, so the test can change it) after reading
/// what the client sent; the requests come back through the channel.
fn serve(
    answer: impl Fn() -> Option<String> + Send + 'static,
    read_first: bool,
) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = String::new();
            if read_first {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                while !request.contains("\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.push_str(&String::from_utf8_lossy(&buf[..n])),
                    }
                }
            }
            match answer() {
                Some(text) => {
                    let _ = conn.write_all(text.as_bytes());
                }
                // Say nothing, keep the connection open a while: a daemon
                // whose socket listens while the program is not there yet.
                None => std::thread::sleep(Duration::from_secs(3)),
            }
            if tx.send(request).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn http_checks_want_a_2xx_or_3xx_answer() -> TestResult {
    require_pid_namespace()?;
    let code = Arc::new(AtomicU16::new(503));
    let answer = {
        let code = code.clone();
        move || {
            let c = code.load(Ordering::SeqCst);
            let reason = match c {
                200 => "OK",
                302 => "Found",
                _ => "Service Unavailable",
            };
            Some(format!(
                "HTTP/1.1 {c} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
        }
    };
    let (port, requests) = serve(answer, true);
    let web = format!(
        "command = [\"sleep\", \"1000\"]\n[ready]\nhttp = \"http://127.0.0.1:{port}/healthz?probe=ready\"\ninterval = \"50ms\"\n[health]\nhttp = \"http://localhost:{port}/healthz\"\ninterval = \"50ms\"\nretries = 2\n"
    );
    let c = Setup::new("httpcheck", &[("web", &web)]).start();
    c.wait_socket();
    // A 503 is an answer, not readiness; status says which answer it was.
    wait_until("a 503 in the note", 5 * SECOND, || {
        c.service("web")["note"]
            .as_str()
            .is_some_and(|n| n.contains("last check: HTTP 503 Service Unavailable"))
    });
    assert_eq!(c.service("web")["ready"], false);
    let request = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        request.starts_with("GET /healthz?probe=ready HTTP/1.1\r\n"),
        "{request:?}"
    );
    assert!(
        request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{request:?}"
    );
    // A redirect counts as up, like Kubernetes' httpGet.
    code.store(302, Ordering::SeqCst);
    wait_until("ready on a 302", 5 * SECOND, || {
        c.service("web")["ready"] == true
    });
    wait_until("healthy", 5 * SECOND, || {
        c.service("web")["health"] == "healthy"
    });
    assert_eq!(c.service("web")["health_output"], "HTTP 302 Found");
    code.store(500, Ordering::SeqCst);
    wait_until("unhealthy on a 500", 5 * SECOND, || {
        c.service("web")["health"] == "unhealthy"
    });
    assert_eq!(
        c.service("web")["health_output"],
        "HTTP 500 Service Unavailable"
    );
    assert!(!c.svctl(&["health"]).status.success());
    Ok(())
}

fn tcp_expect_waits_for_the_greeting_not_the_listen() -> TestResult {
    require_pid_namespace()?;
    // 0: listening, silent; 1: the wrong greeting; 2: an SMTP greeting.
    let stage = Arc::new(AtomicU16::new(0));
    let answer = {
        let stage = stage.clone();
        move || match stage.load(Ordering::SeqCst) {
            0 => None,
            1 => Some("554 not now\r\n".to_string()),
            _ => Some("220 mail.example ESMTP\r\n".to_string()),
        }
    };
    let (port, _requests) = serve(answer, false);
    let smtp = format!(
        "command = [\"sleep\", \"1000\"]\n[ready]\ntcp = \"127.0.0.1:{port}\"\nexpect = \"220\"\ninterval = \"50ms\"\ncheck_timeout = \"300ms\"\n"
    );
    // Without expect, the listening socket alone passes: that is the bug.
    let plain = format!("command = [\"sleep\", \"1000\"]\n[ready]\ntcp = \"127.0.0.1:{port}\"\n");
    let c = Setup::new("tcpexpect", &[("smtp", &smtp), ("plain", &plain)]).start();
    c.wait_socket();
    wait_until("plain ready", 5 * SECOND, || {
        c.service("plain")["ready"] == true
    });
    wait_until("a silent server times out", 5 * SECOND, || {
        c.service("smtp")["note"]
            .as_str()
            .is_some_and(|n| n.contains("last check: check timed out after 300 ms"))
    });
    assert_eq!(c.service("smtp")["ready"], false);
    stage.store(1, Ordering::SeqCst);
    wait_until("the wrong greeting is named", 5 * SECOND, || {
        c.service("smtp")["note"].as_str().is_some_and(|n| {
            n.contains("last check: expected a greeting starting with \"220\", got \"554 not now\"")
        })
    });
    assert_eq!(c.service("smtp")["ready"], false);
    stage.store(2, Ordering::SeqCst);
    wait_until("ready on 220", 5 * SECOND, || {
        c.service("smtp")["ready"] == true
    });
    Ok(())
}
