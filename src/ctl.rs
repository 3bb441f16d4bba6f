//! svctl, the control client (also `corral ctl`): parses its arguments,
//! sends one request over the control socket, prints the answer and maps it
//! to an exit code.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::DEFAULT_SOCKET;
use crate::config::units::parse_duration;
use crate::proto::{ErrorKind, PROTOCOL_VERSION, Request, Response, ServiceStatus, Verb};

mod action;
mod events;
mod render;
mod status;
use render::{actions_table, inspect_report};

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

/// How long start, stop, restart and wait wait unless `--timeout` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the other verbs wait for corral's answer unless `--timeout`
/// says otherwise: a HEALTHCHECK or probe against a stopped corral must end.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Beyond a waiting verb's own timeout, time for corral's answer (which
/// says what is still pending) to arrive.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

pub const USAGE: &str = "\
usage: svctl [--socket PATH] [--timeout DUR] VERB [ARGS...]

verbs:
  status [--json|--names] [NAME...]
                              state of all or the named services (--names: only
                              their names, a line each, for scripts and completion)
  start NAME...               start (with what they require); wait until running
  stop NAME...                stop (with what requires them); wait until stopped
  restart NAME...             stop and start again; wait until running
  run NAME...                 run oneshots now (a scheduled job's overlap applies);
                              wait until they are done
  signal SIG NAME...          send SIG (e.g. HUP) to the services' main processes
  wait [NAME...]              until they (default: all enabled) are ready, oneshots done
  logs [-f] [-n N] [NAME...]  the last N (100) lines of each service (default: all);
                              -f follows new lines until interrupted
  inspect [--json]            the container: its images (metadata.d), its run, its services
  action SERVICE NAME [ARG...]
                              run the service's action NAME (e.g. validate, reload)
                              with ARGs; its output streams here; exits with its code
                              (124: timed out)
  actions [--json|--names] [NAME...]
                              the actions of all or the named services (--names:
                              only the actions' names, a line each)
  events [--json] [NAME...]   every state change, start, exit, readiness, health
                              verdict, scheduled run, reload and action from now on,
                              a line each, until interrupted
  health                      exit 0 iff every enabled service is up, ready, healthy
                              and every oneshot succeeded (for HEALTHCHECK, probes)
  reload [--dry-run]          re-read the services directory and apply what changed
                              (--dry-run: only print the plan); waits until applied
  shutdown                    stop everything and make corral exit

The socket is --socket, else $CORRAL_SOCKET, else /run/corral/control.sock,
else (if only that exists) $XDG_RUNTIME_DIR/corral/control.sock or
/tmp/corral-UID/control.sock, where a corral that cannot use /run puts it,
else the abstract socket @corral-UID of a corral that can write nowhere.
Exit codes: 0 done, 1 failed or timed out, 2 usage or unknown service,
3 corral not reachable, 4 not allowed.";

/// A parsed svctl command line.
#[derive(Debug, Clone, PartialEq)]
struct Invocation {
    socket: PathBuf,
    /// The socket was found, not named: an abstract one must then be held
    /// by root or our own uid (anyone could have bound the name first).
    discovered: bool,
    json: bool,
    /// `status --names`: one name a line.
    names_only: bool,
    verb: Verb,
    /// How long svctl waits for corral in all (connect, send, answer).
    deadline: Duration,
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
        return logs(&inv.socket, inv.discovered, &inv.verb, inv.deadline);
    }
    if let Verb::Action { .. } = inv.verb {
        return action::run(&inv.socket, inv.discovered, &inv.verb, inv.deadline);
    }
    if let Verb::Events { .. } = inv.verb {
        return events::run(
            &inv.socket,
            inv.discovered,
            &inv.verb,
            inv.json,
            inv.deadline,
        );
    }
    if let (Verb::Status { .. }, false) = (&inv.verb, inv.json) {
        let (socket, verb) = (&inv.socket, &inv.verb);
        return status::run(socket, inv.discovered, verb, inv.names_only, inv.deadline)
            .unwrap_or_else(|e| {
                eprintln!("svctl: {}", e.message);
                e.code
            });
    }
    let tty_out = std::io::stdout().is_terminal();
    let response = match call(&inv.socket, inv.discovered, &inv.verb, inv.deadline) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("svctl: {}", e.message);
            return e.code;
        }
    };
    match response {
        Response::Ok { services, message } => {
            if let Verb::Status { .. } = inv.verb {
                // Only --json comes here (see status::run).
                println!("{}", json_doc("services", &services));
            } else {
                // A reload's plan comes before what became of it.
                let plan_first = matches!(inv.verb, Verb::Reload { .. });
                if plan_first && let Some(m) = &message {
                    println!("{}", shown(m, tty_out));
                }
                for s in &services {
                    println!("{}", shown(&outcome(s), tty_out));
                }
                if !plan_first && let Some(m) = message {
                    println!("{}", shown(&m, tty_out));
                }
            }
            EXIT_OK
        }
        // Only `logs` asks for lines and `action` for output; neither
        // comes here.
        Response::Logs { .. }
        | Response::Output(_)
        | Response::Exited { .. }
        | Response::Event(_) => EXIT_FAILED,
        Response::Actions { actions } => {
            if inv.names_only {
                for a in &actions {
                    println!("{}", shown(&a.name, tty_out));
                }
            } else if inv.json {
                println!("{}", json_doc("actions", &actions));
            } else if actions.is_empty() {
                println!("no actions: add [actions.NAME] tables to the service files");
            } else {
                print!("{}", shown(&actions_table(&actions), tty_out));
            }
            EXIT_OK
        }
        Response::Inspect(doc) => {
            if inv.json {
                println!("{}", crate::json::to_string(&doc));
            } else {
                print!("{}", shown(&inspect_report(&doc), tty_out));
            }
            EXIT_OK
        }
        Response::Error { kind, message } => print_error(&inv.verb, kind, &message),
    }
}

/// Prints an error corral answered to `verb`; returns svctl's exit code.
fn print_error(verb: &Verb, kind: ErrorKind, message: &str) -> i32 {
    let tty_err = std::io::stderr().is_terminal();
    if let (Verb::Health, ErrorKind::Failed) = (verb, kind) {
        // One finding per line, under a header.
        eprintln!("svctl: not healthy:");
        for line in message.lines() {
            eprintln!("  {}", shown(line, tty_err));
        }
    } else if message.contains('\n') {
        // A plan or a list of file errors: a line each.
        let mut lines = message.lines();
        eprintln!(
            "svctl: {}",
            shown(lines.next().unwrap_or_default(), tty_err)
        );
        for line in lines {
            eprintln!("  {}", shown(line, tty_err));
        }
    } else {
        eprintln!("svctl: {}", shown(message, tty_err));
    }
    error_code(kind)
}

/// svctl's exit code for an error corral answered.
fn error_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::BadRequest => EXIT_USAGE,
        ErrorKind::Failed => EXIT_FAILED,
        ErrorKind::Denied => EXIT_DENIED,
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

/// Sends one request and reads one answer, all within `timeout`.
pub fn call(
    socket: &std::path::Path,
    discovered: bool,
    verb: &Verb,
    timeout: Duration,
) -> Result<Response, Failure> {
    let mut reader = send(socket, discovered, verb, timeout)?;
    let answer = read_response(&mut reader, socket, timeout)?;
    answer.ok_or_else(|| {
        Failure::from(format!(
            "corral at {} closed the connection without answering",
            socket.display()
        ))
    })
}

/// Connects and sends one request within `timeout`; returns the reader for
/// the answers, with `timeout` as its read timeout.
pub(crate) fn send(
    socket: &std::path::Path,
    discovered: bool,
    verb: &Verb,
    timeout: Duration,
) -> Result<BufReader<UnixStream>, Failure> {
    let mut stream = connect(socket, discovered, timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Failure::from(format!(
                "corral at {} does not accept connections within {}: is it stopped or overloaded?",
                socket.display(),
                shown_duration(timeout)
            ));
        }
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
    let timeout = Some(timeout.max(Duration::from_millis(1)));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut line = crate::json::to_vec(&Request {
        version: PROTOCOL_VERSION,
        verb: verb.clone(),
    });
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send to corral at {}: {e}", socket.display()))?;
    Ok(BufReader::new(stream))
}

/// Sends `verb` and returns the reader of a stream of answers that come
/// when they come (an action's output, events): no read timeout once the
/// request is in. A failure is printed; `Err` is svctl's exit code.
pub(crate) fn open_stream(
    socket: &std::path::Path,
    discovered: bool,
    verb: &Verb,
    timeout: Duration,
) -> Result<BufReader<UnixStream>, i32> {
    let reader = send(socket, discovered, verb, timeout).map_err(|e| {
        eprintln!("svctl: {}", e.message);
        e.code
    })?;
    let _ = reader.get_ref().set_read_timeout(None);
    Ok(reader)
}

/// A Unix stream connection made within `timeout`. connect(2) on a Unix
/// socket waits while the listener's backlog is full (a stopped corral)
/// for as long as the socket's send timeout (unix(7)): set that first.
fn connect(
    path: &std::path::Path,
    discovered: bool,
    timeout: Duration,
) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockopt, setsockopt, socket,
        sockopt,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // At least 1 us (a zero timeout would mean none), at most a day (far
    // inside what TimeVal holds without panicking).
    let micros = i64::try_from(timeout.as_micros())
        .unwrap_or(i64::MAX)
        .clamp(1, 86_400_000_000);
    let tv = <nix::sys::time::TimeVal as nix::sys::time::TimeValLike>::microseconds(micros);
    setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    match crate::cli::abstract_name(path) {
        Some(name) => {
            connect(fd.as_raw_fd(), &UnixAddr::new_abstract(name)?)?;
            // Anyone in the network namespace can bind an abstract name
            // first: one svctl found by itself must be root's or ours.
            let peer = getsockopt(&fd, sockopt::PeerCredentials)?;
            let me = nix::unistd::geteuid().as_raw();
            if discovered && peer.uid() != 0 && peer.uid() != me {
                return Err(std::io::Error::other(format!(
                    "{} is held by uid {} (pid {}), not by root or uid {me}: not corral's; refusing to talk to it",
                    path.display(),
                    peer.uid(),
                    peer.pid()
                )));
            }
        }
        None => connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?,
    }
    Ok(UnixStream::from(fd))
}

/// `{"KEY": [...]}`: what `--json` prints for a list.
fn json_doc<T: crate::json::ToJson>(key: &str, items: &[T]) -> String {
    let mut out = Vec::new();
    crate::json::Object::new(&mut out).field(key, items).end();
    String::from_utf8(out).unwrap_or_default()
}

/// The next answer line; `None` when corral closed the connection.
pub(crate) fn read_response(
    reader: &mut BufReader<UnixStream>,
    socket: &std::path::Path,
    timeout: Duration,
) -> Result<Option<Response>, String> {
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| answer_error(&e, socket, timeout))?;
    if answer.is_empty() {
        return Ok(None);
    }
    crate::json::from_str(&answer)
        .map(Some)
        .map_err(|e| format!("unreadable answer from corral: {e}"))
}

/// What to say when reading corral's answer failed.
fn answer_error(e: &std::io::Error, socket: &std::path::Path, timeout: Duration) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        format!(
            "no answer from corral at {} within {} (svctl --timeout sets how long): is it stopped or overloaded?",
            socket.display(),
            shown_duration(timeout)
        )
    } else {
        format!("no answer from corral at {}: {e}", socket.display())
    }
}

/// `svctl logs`: prints the backlog (which must come within `timeout`),
/// then (with -f) every batch corral sends until it closes the connection
/// or svctl is interrupted.
fn logs(socket: &std::path::Path, discovered: bool, verb: &Verb, timeout: Duration) -> i32 {
    let mut reader = match send(socket, discovered, verb, timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("svctl: {}", e.message);
            return e.code;
        }
    };
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut first = true;
    loop {
        let answer = read_response(&mut reader, socket, timeout);
        if std::mem::take(&mut first) {
            // Following waits as long as it takes for the next line.
            let _ = reader.get_ref().set_read_timeout(None);
        }
        match answer {
            Ok(Some(Response::Logs { lines })) => {
                let mut out = stdout.lock();
                for l in lines {
                    let marker = if l.continued {
                        crate::logs::format::CONTINUED
                    } else {
                        ""
                    };
                    let line = shown(&l.line, tty);
                    if writeln!(out, "{} {} | {line}{marker}", l.time, l.service).is_err() {
                        return EXIT_OK;
                    }
                }
                let _ = out.flush();
            }
            Ok(Some(Response::Error { kind, message })) => {
                eprintln!(
                    "svctl: {}",
                    shown(&message, std::io::stderr().is_terminal())
                );
                return error_code(kind);
            }
            Ok(Some(
                Response::Ok { .. }
                | Response::Inspect(_)
                | Response::Actions { .. }
                | Response::Output(_)
                | Response::Exited { .. }
                | Response::Event(_),
            ))
            | Ok(None) => return EXIT_OK,
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
    let mut timeout = None;
    let mut json = false;
    let mut names_only = false;
    let mut dry_run = false;
    let mut follow = false;
    let mut lines: Option<usize> = None;
    let mut rest: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // After `action SERVICE NAME`, every word is the action's.
        if rest.first() == Some(&"action") && rest.len() >= 3 {
            rest.push(arg);
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" | "help" if rest.is_empty() => return Ok(None),
            "--socket" => socket = Some(PathBuf::from(it.next().ok_or("--socket needs a path")?)),
            "--timeout" => {
                timeout = Some(
                    parse_duration(it.next().ok_or("--timeout needs a duration")?)
                        .map_err(|e| format!("--timeout: {e}"))?,
                )
            }
            "--json" => json = true,
            "--names" => names_only = true,
            "--dry-run" if rest.first() == Some(&"reload") => dry_run = true,
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
    let timeout_ms = timeout.unwrap_or(DEFAULT_TIMEOUT).as_millis() as u64;
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
        "run" => {
            need_names(&names)?;
            Verb::Run { names, timeout_ms }
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
        "reload" if names.is_empty() => Verb::Reload {
            dry_run,
            timeout_ms,
        },
        "reload" => {
            return Err("svctl reload takes no names: it reloads the whole directory".into());
        }
        "action" => {
            let [service, name, args @ ..] = names.as_slice() else {
                return Err("svctl action needs a service and an action name: svctl action SERVICE NAME [ARGS...]".into());
            };
            if timeout.is_some() {
                return Err("svctl action waits until the action ends; its time limit is the action's `timeout` key, not --timeout".into());
            }
            Verb::Action {
                service: service.clone(),
                name: name.clone(),
                args: args.to_vec(),
            }
        }
        "actions" => Verb::Actions { names },
        "events" => Verb::Events { names },
        "health" if names.is_empty() => Verb::Health,
        "inspect" if names.is_empty() => Verb::Inspect,
        "inspect" => {
            return Err("svctl inspect takes no names: it describes the whole container".into());
        }
        "health" => {
            return Err("svctl health takes no names: it checks every enabled service".into());
        }
        other => return Err(format!("unknown verb `{other}`")),
    };
    if json
        && !matches!(
            verb,
            Verb::Status { .. } | Verb::Inspect | Verb::Actions { .. } | Verb::Events { .. }
        )
    {
        return Err("--json goes with status, inspect, actions and events".into());
    }
    if names_only && !matches!(verb, Verb::Status { .. } | Verb::Actions { .. }) {
        return Err("--names goes with status and actions".into());
    }
    if json && names_only {
        return Err("--json and --names: choose one".into());
    }
    if (follow || lines.is_some()) && !matches!(verb, Verb::Logs { .. }) {
        return Err("-f and -n go with logs".into());
    }
    // Waiting verbs: their own timeout, then a moment for corral's answer;
    // the others: the answer itself.
    let deadline = match verb {
        Verb::Start { .. }
        | Verb::Stop { .. }
        | Verb::Restart { .. }
        | Verb::Run { .. }
        | Verb::Wait { .. }
        | Verb::Reload { .. } => Duration::from_millis(timeout_ms) + ANSWER_GRACE,
        Verb::Status { .. }
        | Verb::Signal { .. }
        | Verb::Shutdown
        | Verb::Logs { .. }
        | Verb::Health
        | Verb::Inspect
        | Verb::Action { .. }
        | Verb::Actions { .. }
        | Verb::Events { .. } => timeout.unwrap_or(DEFAULT_ANSWER_TIMEOUT),
    };
    Ok(Some(Invocation {
        discovered: socket.is_none(),
        socket: socket.unwrap_or_else(|| default_socket(env("XDG_RUNTIME_DIR").as_deref())),
        json,
        names_only,
        verb,
        deadline,
    }))
}

/// Whether svctl would accept `args` (for tests elsewhere in the crate).
#[cfg(test)]
pub(crate) fn parses(args: &[String]) -> bool {
    matches!(parse(args, |_| None), Ok(Some(_)))
}

/// One line after start, stop, restart or wait.
fn outcome(s: &ServiceStatus) -> String {
    let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    match (s.kind.as_ref(), s.state.as_ref(), s.ready_ms) {
        ("oneshot", "exited", _) => format!("{}: done", s.name),
        (_, "running", Some(ms)) if ms > 0 => format!("{}: running{pid}, ready in {ms} ms", s.name),
        _ => format!("{}: {}{pid}", s.name, s.state),
    }
}

/// The default socket, or corral's fallback for this uid when only that
/// exists (a corral that is not root, or has a read-only /run).
fn default_socket(xdg_runtime_dir: Option<&str>) -> PathBuf {
    let default = PathBuf::from(DEFAULT_SOCKET);
    let uid = nix::unistd::geteuid().as_raw();
    let fallback = crate::cli::fallback_socket(uid, xdg_runtime_dir);
    let abstract_socket = crate::cli::abstract_socket(uid);
    if default.exists() {
        default
    } else if fallback.exists() {
        fallback
    } else if abstract_listening(&abstract_socket) {
        abstract_socket
    } else {
        default
    }
}

/// Whether an abstract socket `@name` is listening in this network
/// namespace (/proc/net/unix lists them with their `@` name).
fn abstract_listening(path: &std::path::Path) -> bool {
    let wanted = path.to_string_lossy();
    std::fs::read_to_string("/proc/net/unix").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some(&wanted))
    })
}

/// The status table: one row per service, columns aligned.
/// `text` as it may go to a terminal: control characters (escape
/// sequences could rewrite the screen, set the title, or worse on some
/// terminals) and bidirectional overrides are shown escaped. Services write
/// STATUS= texts and log lines; root reads them.
pub fn shown(text: &str, tty: bool) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !tty || !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            match u32::from(c) {
                n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
                n => out.push_str(&format!("\\u{{{n:x}}}")),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A timeout as the user wrote it, roughly: `1.5s`, `10s`, `250ms`.
fn shown_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::render::human_duration;
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
    fn every_verb_has_a_deadline() {
        let d = |a: &[&str]| p(a).unwrap().unwrap().deadline;
        assert_eq!(d(&["status"]), DEFAULT_ANSWER_TIMEOUT);
        assert_eq!(d(&["--timeout", "2s", "health"]), Duration::from_secs(2));
        assert_eq!(
            d(&["--timeout", "1s", "logs", "-n", "1"]),
            Duration::from_secs(1)
        );
        assert_eq!(d(&["--timeout", "1s", "wait"]), Duration::from_secs(2));
        assert_eq!(d(&["stop", "x"]), DEFAULT_TIMEOUT + ANSWER_GRACE);
    }

    #[test]
    fn control_characters_are_escaped_for_terminals_only() {
        let evil = "ok\x1b]0;pwned\x07 \u{202e}txt\tend";
        assert_eq!(shown(evil, false), evil);
        assert_eq!(shown(evil, true), "ok\\x1b]0;pwned\\x07 \\u{202e}txt\tend");
        assert!(matches!(shown("plain", true), Cow::Borrowed(_)));
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
