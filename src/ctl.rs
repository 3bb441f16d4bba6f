//! svctl, the control client (also `corral ctl`): parses its arguments,
//! sends one request over the control socket, prints the answer and maps it
//! to an exit code.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::DEFAULT_SOCKET;
use crate::config::units::parse_duration;
use crate::proto::{ErrorKind, LastExit, PROTOCOL_VERSION, Request, Response, ServiceStatus, Verb};

/// Success.
pub const EXIT_OK: i32 = 0;
/// The operation failed or timed out.
pub const EXIT_FAILED: i32 = 1;
/// Usage error or unknown service.
pub const EXIT_USAGE: i32 = 2;
/// corral could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;
/// The caller may not do this.
pub const EXIT_DENIED: i32 = 4;

/// Lines `svctl logs` shows unless `-n` says otherwise.
pub const DEFAULT_LOG_LINES: usize = 100;

/// How long start, stop and restart wait unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "\
usage: svctl [--socket PATH] [--timeout DUR] VERB [ARGS...]

verbs:
  status [--json] [NAME...]   state of all or the named services
  start NAME...               start (with what they require); wait until running
  stop NAME...                stop (with what requires them); wait until stopped
  restart NAME...             stop and start again; wait until running
  signal SIG NAME...          send SIG (e.g. HUP) to the services' main processes
  wait [NAME...]              until they (default: all enabled) are ready, oneshots done
  logs [-f] [-n N] [NAME...]  the last N (100) lines of the services (default: all);
                              -f follows new lines until interrupted
  health                      exit 0 iff every enabled service is up, ready, healthy
                              and every oneshot succeeded (for HEALTHCHECK, probes)
  shutdown                    stop everything and make corral exit

The socket is --socket, else $CORRAL_SOCKET, else /run/corral/control.sock,
else (if only that exists) $XDG_RUNTIME_DIR/corral/control.sock or
/tmp/corral-UID/control.sock, where a corral that cannot use /run puts it.
Exit codes: 0 done, 1 failed or timed out, 2 usage or unknown service,
3 corral not reachable, 4 not allowed.";

/// A parsed svctl command line.
#[derive(Debug, Clone, PartialEq)]
struct Invocation {
    socket: PathBuf,
    json: bool,
    verb: Verb,
}

/// Runs svctl with `args` (without argv[0]); returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let inv = match parse(args, |k| std::env::var(k).ok()) {
        Ok(Some(inv)) => inv,
        Ok(None) => {
            println!("{USAGE}");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("svctl: {e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    if let Verb::Logs { .. } = inv.verb {
        return logs(&inv.socket, &inv.verb);
    }
    let wait = match &inv.verb {
        Verb::Start { timeout_ms, .. }
        | Verb::Stop { timeout_ms, .. }
        | Verb::Restart { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
        _ => Duration::ZERO,
    };
    let response = match call(&inv.socket, &inv.verb, wait + Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("svctl: {}", e.message);
            return e.code;
        }
    };
    match response {
        Response::Ok { services, message } => {
            if let Verb::Status { .. } = inv.verb {
                if inv.json {
                    #[derive(serde::Serialize)]
                    struct Doc<'a> {
                        services: &'a [ServiceStatus],
                    }
                    match serde_json::to_string(&Doc {
                        services: &services,
                    }) {
                        Ok(doc) => println!("{doc}"),
                        Err(e) => eprintln!("svctl: {e}"),
                    }
                } else {
                    print!("{}", table(&services));
                }
            } else {
                for s in &services {
                    println!("{}", outcome(s));
                }
                if let Some(m) = message {
                    println!("{m}");
                }
            }
            EXIT_OK
        }
        // Only `logs` asks for lines, and it does not come here.
        Response::Logs { .. } => EXIT_FAILED,
        Response::Error { kind, message } => {
            if let (Verb::Health, ErrorKind::Failed) = (&inv.verb, kind) {
                // One finding per line, under a header.
                eprintln!("svctl: not healthy:");
                for line in message.lines() {
                    eprintln!("  {line}");
                }
            } else {
                eprintln!("svctl: {message}");
            }
            match kind {
                ErrorKind::BadRequest => EXIT_USAGE,
                ErrorKind::Failed => EXIT_FAILED,
                ErrorKind::Denied => EXIT_DENIED,
            }
        }
    }
}

/// Sends one request and reads one response.
/// Why a call did not get an answer, with svctl's exit code for it.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            code: EXIT_UNREACHABLE,
            message,
        }
    }
}

pub fn call(socket: &std::path::Path, verb: &Verb, timeout: Duration) -> Result<Response, Failure> {
    let mut reader = send(socket, verb, Some(timeout))?;
    let answer = read_response(&mut reader, socket)?;
    answer.ok_or_else(|| {
        Failure::from(format!(
            "corral at {} closed the connection without answering",
            socket.display()
        ))
    })
}

/// Connects and sends one request; returns the reader for the answers.
fn send(
    socket: &std::path::Path,
    verb: &Verb,
    timeout: Option<Duration>,
) -> Result<BufReader<UnixStream>, Failure> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return Failure {
                code: EXIT_DENIED,
                message: format!(
                    "permission denied on {}: only root, corral's own user and members of its \
                     CORRAL_CONTROL_GROUP (read-only) may use it",
                    socket.display()
                ),
            };
        }
        Failure::from(format!(
            "cannot reach corral at {}: {e}. Is corral running, and is this its socket? \
             (set --socket or CORRAL_SOCKET to the path corral was started with)",
            socket.display()
        ))
    })?;
    let _ = stream.set_read_timeout(timeout);
    let mut line = serde_json::to_vec(&Request {
        version: PROTOCOL_VERSION,
        verb: verb.clone(),
    })
    .map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send to corral at {}: {e}", socket.display()))?;
    Ok(BufReader::new(stream))
}

/// The next answer line; `None` when corral closed the connection.
fn read_response(
    reader: &mut BufReader<UnixStream>,
    socket: &std::path::Path,
) -> Result<Option<Response>, String> {
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from corral at {}: {e}", socket.display()))?;
    if answer.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| format!("unreadable answer from corral: {e}"))
}

/// `svctl logs`: prints the backlog, then (with -f) every batch corral
/// sends until it closes the connection or svctl is interrupted.
fn logs(socket: &std::path::Path, verb: &Verb) -> i32 {
    let mut reader = match send(socket, verb, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("svctl: {}", e.message);
            return e.code;
        }
    };
    let stdout = std::io::stdout();
    loop {
        match read_response(&mut reader, socket) {
            Ok(Some(Response::Logs { lines })) => {
                let mut out = stdout.lock();
                for l in lines {
                    let marker = if l.continued {
                        crate::logs::format::CONTINUED
                    } else {
                        ""
                    };
                    if writeln!(out, "{} {} | {}{marker}", l.time, l.service, l.line).is_err() {
                        return EXIT_OK;
                    }
                }
                let _ = out.flush();
            }
            Ok(Some(Response::Error { kind, message })) => {
                eprintln!("svctl: {message}");
                return match kind {
                    ErrorKind::BadRequest => EXIT_USAGE,
                    ErrorKind::Failed => EXIT_FAILED,
                    ErrorKind::Denied => EXIT_DENIED,
                };
            }
            Ok(Some(Response::Ok { .. })) | Ok(None) => return EXIT_OK,
            Err(e) => {
                eprintln!("svctl: {e}");
                return EXIT_FAILED;
            }
        }
    }
}

/// Parses svctl's arguments. `Ok(None)` means help was asked for.
fn parse(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Invocation>, String> {
    let mut socket = env("CORRAL_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut timeout = DEFAULT_TIMEOUT;
    let mut json = false;
    let mut follow = false;
    let mut lines: Option<usize> = None;
    let mut rest: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" if rest.is_empty() => return Ok(None),
            "--socket" => socket = Some(PathBuf::from(it.next().ok_or("--socket needs a path")?)),
            "--timeout" => {
                timeout = parse_duration(it.next().ok_or("--timeout needs a duration")?)
                    .map_err(|e| format!("--timeout: {e}"))?
            }
            "--json" => json = true,
            "-f" | "--follow" => follow = true,
            "-n" | "--lines" => {
                let n = it.next().ok_or("-n needs a number of lines")?;
                lines = Some(
                    n.parse()
                        .map_err(|_| format!("-n {n}: not a number of lines"))?,
                );
            }
            s if s.starts_with('-') && s.len() > 1 && rest.first() != Some(&"signal") => {
                return Err(format!("unknown option {s}"));
            }
            s => rest.push(s),
        }
    }
    let Some((&verb, names)) = rest.split_first() else {
        return Err("no verb given".into());
    };
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let timeout_ms = timeout.as_millis() as u64;
    let need_names = |names: &Vec<String>| {
        if names.is_empty() {
            Err(format!("svctl {verb} needs at least one service name"))
        } else {
            Ok(())
        }
    };
    let verb = match verb {
        "status" => Verb::Status { names },
        "start" => {
            need_names(&names)?;
            Verb::Start { names, timeout_ms }
        }
        "stop" => {
            need_names(&names)?;
            Verb::Stop { names, timeout_ms }
        }
        "restart" => {
            need_names(&names)?;
            Verb::Restart { names, timeout_ms }
        }
        "signal" => {
            let (signal, names) = names
                .split_first()
                .ok_or("svctl signal needs a signal and service names")?;
            let names = names.to_vec();
            need_names(&names)?;
            Verb::Signal {
                signal: signal.clone(),
                names,
            }
        }
        "shutdown" if names.is_empty() => Verb::Shutdown,
        "shutdown" => return Err("svctl shutdown takes no names".into()),
        "wait" => Verb::Wait { names, timeout_ms },
        "logs" => Verb::Logs {
            names,
            lines: lines.unwrap_or(DEFAULT_LOG_LINES),
            follow,
        },
        "health" if names.is_empty() => Verb::Health,
        "health" => {
            return Err("svctl health takes no names: it checks every enabled service".into());
        }
        other => return Err(format!("unknown verb `{other}`")),
    };
    if json && !matches!(verb, Verb::Status { .. }) {
        return Err("--json goes with status".into());
    }
    if (follow || lines.is_some()) && !matches!(verb, Verb::Logs { .. }) {
        return Err("-f and -n go with logs".into());
    }
    Ok(Some(Invocation {
        socket: socket.unwrap_or_else(|| default_socket(env("XDG_RUNTIME_DIR").as_deref())),
        json,
        verb,
    }))
}

/// One line after start, stop, restart or wait.
fn outcome(s: &ServiceStatus) -> String {
    let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    match (s.kind.as_str(), s.state.as_str(), s.ready_ms) {
        ("oneshot", "exited", _) => format!("{}: done", s.name),
        (_, "running", Some(ms)) if ms > 0 => format!("{}: running{pid}, ready in {ms} ms", s.name),
        _ => format!("{}: {}{pid}", s.name, s.state),
    }
}

/// The default socket, or corral's fallback for this uid when only that
/// exists (a corral that is not root, or has a read-only /run).
fn default_socket(xdg_runtime_dir: Option<&str>) -> PathBuf {
    let default = PathBuf::from(DEFAULT_SOCKET);
    let fallback = crate::cli::fallback_socket(nix::unistd::geteuid().as_raw(), xdg_runtime_dir);
    if !default.exists() && fallback.exists() {
        fallback
    } else {
        default
    }
}

/// The status table: one row per service, columns aligned.
fn table(services: &[ServiceStatus]) -> String {
    let header = [
        "NAME",
        "STATE",
        "READY",
        "HEALTH",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "NOTE",
    ];
    let rows: Vec<[String; 9]> = services
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.state.clone(),
                match (s.kind.as_str(), s.ready, s.ready_ms) {
                    ("oneshot", true, _) => "done".into(),
                    (_, true, Some(ms)) if ms > 0 => format!("yes {}", human_duration(ms)),
                    (_, true, _) => "yes".into(),
                    (_, false, _) if s.state == "running" => "no".into(),
                    _ => "-".into(),
                },
                s.health.clone().unwrap_or_else(|| "-".into()),
                s.pid.map_or("-".into(), |p| p.to_string()),
                // Uptime means something only while a process exists.
                match (s.state.as_str(), s.uptime_ms) {
                    ("running" | "stopping", Some(ms)) => human_duration(ms),
                    _ => "-".into(),
                },
                s.restarts.to_string(),
                match s.last_exit {
                    None => "-".into(),
                    Some(LastExit::Code(c)) => format!("exit {c}"),
                    Some(LastExit::Signal(n)) => nix::sys::signal::Signal::try_from(n)
                        .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_string()),
                },
                // The service's own STATUS= when corral has nothing to add.
                s.note
                    .clone()
                    .or_else(|| s.status_text.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// `850ms`, `12s`, `3m04s`, `2h05m`, `3d04h`.
fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Option<Invocation>, String> {
        let args: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        parse(&args, |_| None)
    }

    #[test]
    fn verbs_parse() {
        let inv = p(&["--socket", "/s", "status", "--json", "db"])
            .unwrap()
            .unwrap();
        assert_eq!(inv.socket, PathBuf::from("/s"));
        assert!(inv.json);
        assert_eq!(
            inv.verb,
            Verb::Status {
                names: vec!["db".into()]
            }
        );
        let inv = p(&["--timeout", "2s", "restart", "a", "b"])
            .unwrap()
            .unwrap();
        assert_eq!(
            inv.verb,
            Verb::Restart {
                names: vec!["a".into(), "b".into()],
                timeout_ms: 2000
            }
        );
        let inv = p(&["signal", "HUP", "web"]).unwrap().unwrap();
        assert_eq!(
            inv.verb,
            Verb::Signal {
                signal: "HUP".into(),
                names: vec!["web".into()]
            }
        );
        assert_eq!(p(&["shutdown"]).unwrap().unwrap().verb, Verb::Shutdown);
        assert_eq!(
            p(&["logs", "-f", "-n", "5", "db", "web"])
                .unwrap()
                .unwrap()
                .verb,
            Verb::Logs {
                names: vec!["db".into(), "web".into()],
                lines: 5,
                follow: true
            }
        );
        assert_eq!(p(&["--help"]).unwrap(), None);
    }

    #[test]
    fn usage_errors() {
        assert!(p(&[]).unwrap_err().contains("no verb"));
        assert!(p(&["start"]).unwrap_err().contains("needs at least one"));
        assert!(
            p(&["signal", "HUP"])
                .unwrap_err()
                .contains("needs at least one")
        );
        assert!(p(&["dance"]).unwrap_err().contains("unknown verb"));
        assert!(p(&["stop", "--json", "a"]).unwrap_err().contains("--json"));
        assert!(
            p(&["status", "-f"])
                .unwrap_err()
                .contains("-f and -n go with logs")
        );
        assert!(
            p(&["logs", "-n", "many"])
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            p(&["--timeout", "x", "stop", "a"])
                .unwrap_err()
                .contains("--timeout")
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_000), "12s");
        assert_eq!(human_duration(184_000), "3m04s");
        assert_eq!(human_duration(7_500_000), "2h05m");
        assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }
}
