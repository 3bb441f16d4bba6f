//! The metrics endpoint under a real PID 1: every family with its type,
//! counters that move with a crash loop, a parser of the text format of
//! our own and promtool's check, HTTP answers other than 200, 100 silent
//! clients that delay nothing, and nothing listening unless asked.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    every_family_is_there_and_counters_move_with_a_crash_loop,
    the_exposition_passes_promtool,
    other_paths_methods_and_silent_clients,
    nothing_listens_unless_asked_and_a_taken_port_is_not_fatal,
];

/// Families every scrape has, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("corral_service_state", "gauge"),
    ("corral_service_up", "gauge"),
    ("corral_service_healthy", "gauge"),
    ("corral_service_starts_total", "counter"),
    ("corral_service_restarts_total", "counter"),
    ("corral_service_failures_total", "counter"),
    ("corral_service_start_time_seconds", "gauge"),
    ("corral_service_last_exit_code", "gauge"),
    ("corral_log_lines_total", "counter"),
    ("corral_log_dropped_lines_total", "counter"),
    ("corral_log_file_lost_lines_total", "counter"),
    ("corral_schedule_next_run_timestamp_seconds", "gauge"),
    ("corral_schedule_runs_total", "counter"),
    ("corral_orphans_reaped_total", "counter"),
    ("corral_control_requests_total", "counter"),
    ("corral_build_info", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_start_time_seconds", "gauge"),
];

/// One metric family as parsed.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// A strict parser of the text format (0.0.4), independent of corral's
/// writer: the rules Prometheus applies, with an error naming the line.
fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut closed: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.trim_start().splitn(3, ' ');
            let (kw, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let arg = words.next().unwrap_or("");
            match kw {
                "HELP" | "TYPE" => {
                    if !valid_name(name) {
                        return Err(at("bad metric name"));
                    }
                    if current.as_deref() != Some(name) {
                        if let Some(c) = current.take() {
                            closed.push(c);
                        }
                        if closed.iter().any(|c| c == name) {
                            return Err(at("family announced again after others"));
                        }
                        current = Some(name.to_string());
                    }
                    let f = families.entry(name.to_string()).or_default();
                    if kw == "HELP" {
                        if f.help {
                            return Err(at("second HELP"));
                        }
                        unescape(arg, false).map_err(|e| at(&e))?;
                        f.help = true;
                    } else {
                        if !f.kind.is_empty() {
                            return Err(at("second TYPE"));
                        }
                        if !f.samples.is_empty() {
                            return Err(at("TYPE after samples"));
                        }
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                            return Err(at("unknown type"));
                        }
                        f.kind = arg.to_string();
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(at("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            rest = body;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| at("label without ="))?;
                let key = &rest[..eq];
                if !valid_label(key) {
                    return Err(at("bad label name"));
                }
                let quoted = rest[eq + 1..]
                    .strip_prefix('"')
                    .ok_or_else(|| at("label value not quoted"))?;
                // The closing quote is the first one not escaped.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| at("unterminated label value"))?;
                let value = unescape(&quoted[..end], true).map_err(|e| at(&e))?;
                if labels.insert(key.to_string(), value).is_some() {
                    return Err(at("label twice"));
                }
                rest = &quoted[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("value is not a number"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp"))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text"));
        }
        if current.as_deref() != Some(name) {
            return Err(at("sample outside its family's block"));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(at("the same series twice"));
        }
        families
            .entry(name.to_string())
            .or_default()
            .samples
            .push((labels, value));
    }
    Ok(families)
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(n: &str) -> bool {
    valid_name(n) && !n.contains(':') && !n.starts_with("__")
}

/// Undoes the format's escapes; any other backslash sequence is an error.
fn unescape(text: &str, quote: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// Sends `request` and reads the whole answer (the server closes).
fn http(stream: &mut (impl Read + Write), request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, head.to_string(), body.to_string())
}

fn scrape_unix(path: &Path) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(10 * SECOND)).unwrap();
    let (status, head, body) = http(&mut s, "GET /metrics HTTP/1.1\r\nHost: corral\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    body
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(10 * SECOND)).unwrap();
    s
}

/// The one value of `family` whose labels include all of `labels`.
fn value(f: &BTreeMap<String, Family>, family: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = f
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let hits: Vec<f64> = fam
        .samples
        .iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{family}{labels:?}: {hits:?}");
    hits[0]
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SERVICES: &[(&str, &str)] = &[
    (
        "crash",
        "run = \"echo going; echo down >&2; sleep 0.2; exit 3\"\nrestart_delay = \"100ms\"\n",
    ),
    (
        "web",
        "run = \"echo hello; exec sleep 1000\"\n[health]\nexec = \"true\"\ninterval = \"100ms\"\n",
    ),
    (
        "tick",
        "type = \"oneshot\"\nrun = \"true\"\n[schedule]\nevery = \"1s\"\n",
    ),
];

fn every_family_is_there_and_counters_move_with_a_crash_loop() -> TestResult {
    require_pid_namespace()?;
    let setup = Setup::new("metrics", SERVICES);
    let sock = setup.dir.path("metrics.sock");
    let c = setup.env("CORRAL_METRICS", sock.to_str().unwrap()).start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    wait_until("the metrics socket", 5 * SECOND, || {
        UnixStream::connect(&sock).is_ok()
    });
    let first = parse(&scrape_unix(&sock)).unwrap_or_else(|e| panic!("{e}"));
    for (name, kind) in FAMILIES {
        let f = first
            .get(*name)
            .unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(f.kind, *kind, "{name}");
        assert!(f.help, "{name} has no HELP");
    }
    // One state of each service is 1, the others 0.
    for svc in ["crash", "web", "tick"] {
        let states = &first["corral_service_state"].samples;
        let ones: Vec<&str> = states
            .iter()
            .filter(|(l, v)| l["service"] == svc && *v == 1.0)
            .map(|(l, _)| l["state"].as_str())
            .collect();
        assert_eq!(ones.len(), 1, "{svc}: {ones:?}");
    }
    assert_eq!(
        value(
            &first,
            "corral_service_state",
            &[("service", "web"), ("state", "running")]
        ),
        1.0
    );
    assert_eq!(
        value(&first, "corral_service_up", &[("service", "web")]),
        1.0
    );
    let pid = c.service("web")["pid"].as_i64().unwrap();
    let started = value(
        &first,
        "corral_service_start_time_seconds",
        &[("service", "web")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 10.0..=now).contains(&started),
        "{started} vs {now} (pid {pid})"
    );
    assert_eq!(value(&first, "corral_build_info", &[]), 1.0);
    assert!(value(&first, "process_resident_memory_bytes", &[]) > 100_000.0);
    assert!(value(&first, "process_open_fds", &[]) >= 3.0);
    let next = value(
        &first,
        "corral_schedule_next_run_timestamp_seconds",
        &[("service", "tick")],
    );
    assert!((now..now + 2.0).contains(&next), "{next} vs {now}");

    // The crash loop moves its counters; web's stay.
    let starts = value(
        &first,
        "corral_service_starts_total",
        &[("service", "crash")],
    );
    c.svctl(&["status"]);
    let mut later = first;
    wait_until("two more crashes and a run of tick", 10 * SECOND, || {
        later = parse(&scrape_unix(&sock)).unwrap();
        value(
            &later,
            "corral_service_starts_total",
            &[("service", "crash")],
        ) >= starts + 2.0
            && value(
                &later,
                "corral_schedule_runs_total",
                &[("service", "tick"), ("result", "success")],
            ) >= 1.0
    });
    let crash = [("service", "crash")];
    assert!(value(&later, "corral_service_failures_total", &crash) >= 2.0);
    assert!(value(&later, "corral_service_restarts_total", &crash) >= 2.0);
    assert_eq!(value(&later, "corral_service_last_exit_code", &crash), 3.0);
    assert!(
        value(
            &later,
            "corral_log_lines_total",
            &[("service", "crash"), ("stream", "stdout")]
        ) >= 2.0
    );
    assert!(
        value(
            &later,
            "corral_log_lines_total",
            &[("service", "crash"), ("stream", "stderr")]
        ) >= 2.0
    );
    let web = [("service", "web")];
    assert_eq!(value(&later, "corral_service_starts_total", &web), 1.0);
    assert_eq!(value(&later, "corral_service_failures_total", &web), 0.0);
    assert_eq!(value(&later, "corral_service_healthy", &web), 1.0);
    assert_eq!(
        value(
            &later,
            "corral_log_lines_total",
            &[("service", "web"), ("stream", "stdout")]
        ),
        1.0
    );
    // svctl status, and the status --json of c.service() above.
    assert!(
        value(
            &later,
            "corral_control_requests_total",
            &[("verb", "status")]
        ) >= 2.0
    );
    Ok(())
}

fn the_exposition_passes_promtool() -> TestResult {
    require_pid_namespace()?;
    let promtool = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("promtool"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Skip("promtool is not installed (Debian: the prometheus package ships it)".into())
        })?;
    let setup = Setup::new("promtool", SERVICES);
    let sock = setup.dir.path("metrics.sock");
    let c = setup.env("CORRAL_METRICS", sock.to_str().unwrap()).start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    c.svctl(&["status"]);
    c.svctl(&["bogus-verb-for-the-invalid-label"]);
    wait_until("a crash counted", 5 * SECOND, || {
        let m = parse(&scrape_unix(&sock)).unwrap();
        value(&m, "corral_service_failures_total", &[("service", "crash")]) >= 1.0
    });
    let text = scrape_unix(&sock);
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn other_paths_methods_and_silent_clients() -> TestResult {
    require_pid_namespace()?;
    let port = free_port();
    let c = Setup::new("metrics-http", &[("web", "run = \"exec sleep 1000\"\n")])
        .args(&["--metrics", &format!("127.0.0.1:{port}")])
        .start();
    c.wait_socket();
    wait_until("the metrics port", 5 * SECOND, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, _, body) = http(&mut tcp(port), "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");
    let (status, head, _) = http(
        &mut tcp(port),
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (status, head, body) = http(&mut tcp(port), "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        body.is_empty() && !head.contains("Content-Length: 0"),
        "{head}"
    );
    let (status, _, _) = http(&mut tcp(port), "GET /metrics FTP\r\n\r\n");
    assert_eq!(status, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let mut s = tcp(port);
    let _ = s.write_all(huge.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.60}");

    // 100 connections that never send a request: status still answers
    // at once, and a scraper still gets in (the oldest silent one goes).
    let silent: Vec<TcpStream> = (0..100).map(|_| tcp(port)).collect();
    let half = {
        let mut s = tcp(port);
        s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        s
    };
    let t = Instant::now();
    let out = c.svctl(&["status"]);
    assert!(out.status.success());
    let status_took = t.elapsed();
    let (status, _, body) = http(&mut tcp(port), "GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    parse(&body).unwrap_or_else(|e| panic!("{e}"));
    // Not a timing test: a generous bound that only a blocked loop (a
    // request read waiting on a silent peer) would break.
    assert!(status_took < 2 * SECOND, "status took {status_took:?}");
    assert!(
        c.stderr().contains("dropping the oldest to make room"),
        "the full table is logged"
    );
    drop((silent, half));
    Ok(())
}

fn nothing_listens_unless_asked_and_a_taken_port_is_not_fatal() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new("metrics-off", &[("web", "run = \"exec sleep 1000\"\n")]).start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    let pid = c.host_pid();
    let sockets = socket_inodes(pid);
    let tcp_listed: String = ["tcp", "tcp6"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default())
        .collect();
    for inode in &sockets {
        assert!(
            !tcp_listed
                .lines()
                .any(|l| l.split_whitespace().nth(9) == Some(inode.as_str())),
            "corral holds a TCP socket (inode {inode}) without CORRAL_METRICS"
        );
    }
    // Its only listening Unix socket is the control socket.
    let unix = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    let listening: Vec<&str> = unix
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 7 && f[3] == "00010000" && sockets.iter().any(|i| i == f[6])
        })
        .map(|l| l.split_whitespace().nth(7).unwrap_or("(unnamed)"))
        .collect();
    assert_eq!(listening, [c.socket.to_str().unwrap()]);
    assert!(!c.stderr().contains("metrics"), "{}", c.stderr());
    drop(c);

    // Asked for a port someone else holds: said, and the services run.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let c = Setup::new("metrics-taken", &[("web", "run = \"exec sleep 1000\"\n")])
        .env("CORRAL_METRICS", &format!("127.0.0.1:{port}"))
        .start();
    c.wait_socket();
    c.wait_state("web", "running", 5 * SECOND);
    assert!(
        c.stderr().contains(&format!(
            "metrics: cannot listen at http://127.0.0.1:{port}/metrics"
        )),
        "{}",
        c.stderr()
    );
    // A malformed address is a usage error before anything starts.
    let out = Command::new(corral_bin())
        .env("CORRAL_METRICS", "localhost:9090")
        .args(["--services", "/nonexistent", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CORRAL_METRICS: \"localhost:9090\" is not a metrics address"),
        "{err}"
    );
    drop(taken);
    Ok(())
}

/// The inodes of the sockets `pid` holds.
fn socket_inodes(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}
