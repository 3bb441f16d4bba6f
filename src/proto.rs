//! The control protocol between corral and svctl: one JSON request per line,
//! one JSON response per line, over the Unix control socket. Both sides use
//! these types, so they cannot drift apart. How each is written and read
//! (`crate::json`) follows the types, at the end of this file.

use std::borrow::Cow;

use crate::json::{self, Fields, FromJson, Json, JsonObject, Object, ToJson, json_object};

/// Bumped when a change would make old clients misread new servers.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request: the protocol version and one verb.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub version: u32,
    pub verb: Verb,
}

/// What svctl asks for. Names are service names; an empty list in `status`
/// means all services.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Status {
        names: Vec<String>,
    },
    Start {
        names: Vec<String>,
        timeout_ms: u64,
    },
    Stop {
        names: Vec<String>,
        timeout_ms: u64,
    },
    Restart {
        names: Vec<String>,
        timeout_ms: u64,
    },
    /// Run these oneshots now (overlap applies to one that runs); wait
    /// until the runs are done.
    Run {
        names: Vec<String>,
        timeout_ms: u64,
    },
    Signal {
        signal: String,
        names: Vec<String>,
    },
    Shutdown,
    /// Until the services (all enabled ones when `names` is empty) are
    /// ready and their oneshots done.
    Wait {
        names: Vec<String>,
        timeout_ms: u64,
    },
    /// Healthy: every enabled service up, ready and not unhealthy, every
    /// oneshot done.
    Health,
    /// The container's images, run and services.
    Inspect,
    /// The last `lines` lines of the services (all when `names` is empty);
    /// with `follow`, then every new line until the client goes away.
    Logs {
        names: Vec<String>,
        lines: usize,
        follow: bool,
    },
    /// Re-read the services directory and apply it (or, with `dry_run`,
    /// only say what that would do); answer once it is applied.
    Reload {
        dry_run: bool,
        timeout_ms: u64,
    },
    /// Run one action of a service with these arguments: its output
    /// comes as `Output` answers while it runs, then one `Exited`.
    Action {
        service: String,
        name: String,
        args: Vec<String>,
    },
    /// The actions of the services (all when `names` is empty).
    Actions {
        names: Vec<String>,
    },
    /// Every event from now on (of these services; all when empty) until
    /// the client goes away: one `Event` answer each.
    Events {
        names: Vec<String>,
    },
}

impl Verb {
    /// The verb as it travels (`"verb": "status"`): a label for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Status { .. } => "status",
            Verb::Start { .. } => "start",
            Verb::Stop { .. } => "stop",
            Verb::Restart { .. } => "restart",
            Verb::Run { .. } => "run",
            Verb::Signal { .. } => "signal",
            Verb::Shutdown => "shutdown",
            Verb::Wait { .. } => "wait",
            Verb::Health => "health",
            Verb::Inspect => "inspect",
            Verb::Logs { .. } => "logs",
            Verb::Reload { .. } => "reload",
            Verb::Action { .. } => "action",
            Verb::Actions { .. } => "actions",
            Verb::Events { .. } => "events",
        }
    }
}

/// One line of `svctl events`: when, which service (none for a reload),
/// what happened, and the details that kind of event has. Stable,
/// documented in README.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLine {
    /// RFC 3339, UTC.
    pub time: String,
    pub service: Option<String>,
    /// `state`, `started`, `exited`, `ready`, `health`, `run`, `skipped`,
    /// `added`, `removed`, `reload` or `action`.
    pub event: String,
    /// `state`: the state words before and after.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `started`, `exited`: the process.
    pub pid: Option<i32>,
    /// `exited`: how it ended.
    pub exit: Option<LastExit>,
    /// `ready`: how long the process took.
    pub ready_ms: Option<u64>,
    /// `health`: the verdict and the last check's line.
    pub health: Option<String>,
    pub output: Option<String>,
    /// `action`: its name and exit code.
    pub action: Option<String>,
    pub code: Option<i32>,
    /// `reload`: the plan, a line each.
    pub plan: Option<Vec<String>>,
    /// Why, where there is more to say (a state's note).
    pub note: Option<String>,
}

/// One action in `svctl actions`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionInfo {
    pub service: String,
    pub name: String,
    pub description: Option<String>,
    /// `command` or `signal`.
    pub kind: String,
    /// `running` or `any`.
    pub when: String,
    /// A command's time limit.
    pub timeout_ms: Option<u64>,
    /// A run of it is in progress.
    pub running: bool,
}

/// A piece of an action's output, exactly as it wrote it: `text` when it
/// is valid UTF-8, else `base64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: Option<String>,
    pub base64: Option<String>,
}

impl Chunk {
    pub fn new(stream: &str, bytes: &[u8]) -> Chunk {
        match std::str::from_utf8(bytes) {
            Ok(text) => Chunk {
                stream: stream.into(),
                text: Some(text.into()),
                base64: None,
            },
            Err(_) => Chunk {
                stream: stream.into(),
                text: None,
                base64: Some(crate::base64::encode(bytes)),
            },
        }
    }

    /// The bytes it carries; `None` for base64 that does not decode.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match (&self.text, &self.base64) {
            (Some(t), _) => Some(t.as_bytes().to_vec()),
            (None, Some(b)) => crate::base64::decode(b),
            (None, None) => Some(Vec::new()),
        }
    }
}

/// One line of `svctl logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// RFC 3339, when corral read it.
    pub time: String,
    pub service: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text; invalid UTF-8 replaced.
    pub line: String,
    /// A piece of a cut line, continued in the next.
    pub continued: bool,
}

/// How a process ended: an exit code or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExit {
    Code(i32),
    Signal(i32),
}

/// One service in a status reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    /// `starting`, `running`, `stopping`, `stopped`, `backoff`, `failed` or
    /// `exited`. (A constant where corral writes it: no allocation per
    /// service and answer.)
    pub state: Cow<'static, str>,
    pub pid: Option<i32>,
    /// Milliseconds in the current state, or since the process started when
    /// running.
    pub uptime_ms: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub enabled: bool,
    /// The user the service runs as, when one is configured.
    pub user: Option<String>,
    /// Why the service is in its state: what it waits for, when it
    /// restarts, why it failed.
    pub note: Option<String>,
    /// `longrun` or `oneshot`.
    pub kind: Cow<'static, str>,
    /// Ready (a longrun) or done successfully (a oneshot).
    pub ready: bool,
    /// How long the current process took to become ready.
    pub ready_ms: Option<u64>,
    /// `starting`, `healthy` or `unhealthy` while health checks run.
    pub health: Option<String>,
    /// The last line of the last health check.
    pub health_output: Option<String>,
    /// The service's own STATUS= text (notify protocol).
    pub status_text: Option<String>,
    /// Lines the container output did not get (`on_full = "drop"`, or
    /// corral's stdout or stderr broken).
    pub dropped_lines: u64,
    /// Lines the service's log file did not get (disk full, a file corral
    /// refused to write).
    pub file_lost_lines: u64,
    /// A scheduled oneshot's schedule and its runs.
    pub schedule: Option<ScheduleStatus>,
    /// The names of its actions (`svctl action`).
    pub actions: Vec<String>,
}

/// `status` of a scheduled job. Times are RFC 3339 with their offset.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleStatus {
    /// `cron "30 3 * * *" (Europe/Berlin)` or `every 10m`.
    pub when: String,
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    pub last_exit: Option<LastExit>,
    pub last_duration_ms: Option<u64>,
    /// The last run got no process: why (`cannot start: ...`).
    pub last_error: Option<String>,
    pub runs: u64,
    pub skipped: u64,
    /// A run waits for the running one (overlap = "queue").
    pub queued: bool,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok {
        services: Vec<ServiceStatus>,
        message: Option<String>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
    /// Log lines, oldest first; a follower gets one of these per batch.
    Logs {
        lines: Vec<LogLine>,
    },
    /// `inspect`: the container's identity and state.
    Inspect(Box<Inspect>),
    /// `actions`: every action of the services asked about.
    Actions {
        actions: Vec<ActionInfo>,
    },
    /// Output of a running action, as it comes.
    Output(Chunk),
    /// `events`: one event, as it happens.
    Event(Box<EventLine>),
    /// The action is over: svctl exits with `code` (the action's exit
    /// code, 128+N when a signal killed it, 124 when it timed out), saying
    /// `message` if there is one.
    Exited {
        code: i32,
        message: Option<String>,
    },
}

/// `svctl inspect --json`: stable, documented in README.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    /// Every image's metadata file, base first.
    pub images: Vec<crate::config::metadata::ImageMeta>,
    pub runtime: Runtime,
    pub services: Vec<ServiceStatus>,
}

/// Facts about this container's run. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    pub corral_version: String,
    pub corral_started: String,
    pub uptime_ms: u64,
    pub hostname: String,
    pub main_command: Option<Vec<String>>,
    /// The first start this container's file system saw, and how many
    /// starts it has seen (null when the state directory is not writable).
    pub first_started: Option<String>,
    pub starts: Option<u64>,
}

/// Error classes, which svctl maps to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A name that no service file defines, or a malformed request (exit 2).
    BadRequest,
    /// The operation ran but did not reach its goal: failed, timed out (exit 1).
    Failed,
    /// The caller may not do this (exit 4).
    Denied,
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Decodes one request line, answering a mismatched version or bad JSON with
/// the reason.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    let malformed = |e: String| format!("malformed request: {e}");
    let text = std::str::from_utf8(line).map_err(|_| malformed("not UTF-8".into()))?;
    let tree = json::parse(text).map_err(malformed)?;
    let fields = tree.fields().map_err(malformed)?;
    let version: Option<u32> = fields.get("version").map_err(malformed)?;
    if version != Some(PROTOCOL_VERSION) {
        return Err(format!(
            "protocol version mismatch: corral speaks version {PROTOCOL_VERSION}, the request has {}; use the svctl of the same corral build",
            version.map_or("none".to_string(), |v| v.to_string())
        ));
    }
    Verb::from_fields(&fields)
        .map(|verb| Request {
            version: PROTOCOL_VERSION,
            verb,
        })
        .map_err(malformed)
}

// ------------------------------------------------------------ as JSON

impl ToJson for Request {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.field("version", &self.version);
        self.verb.write_fields(&mut o);
        o.end();
    }
}

impl Verb {
    /// `"verb": NAME` and the verb's arguments, into the request.
    fn write_fields(&self, o: &mut Object<'_>) {
        o.field("verb", self.name());
        match self {
            Verb::Status { names } | Verb::Actions { names } | Verb::Events { names } => {
                o.field("names", names);
            }
            Verb::Start { names, timeout_ms }
            | Verb::Stop { names, timeout_ms }
            | Verb::Restart { names, timeout_ms }
            | Verb::Run { names, timeout_ms }
            | Verb::Wait { names, timeout_ms } => {
                o.field("names", names).field("timeout_ms", timeout_ms);
            }
            Verb::Signal { signal, names } => {
                o.field("signal", signal).field("names", names);
            }
            Verb::Shutdown | Verb::Health | Verb::Inspect => {}
            Verb::Logs {
                names,
                lines,
                follow,
            } => {
                o.field("names", names)
                    .field("lines", lines)
                    .field("follow", follow);
            }
            Verb::Reload {
                dry_run,
                timeout_ms,
            } => {
                o.field("dry_run", dry_run).field("timeout_ms", timeout_ms);
            }
            Verb::Action {
                service,
                name,
                args,
            } => {
                o.field("service", service)
                    .field("name", name)
                    .field("args", args);
            }
        }
    }

    fn from_fields(f: &Fields<'_, '_>) -> Result<Verb, String> {
        let verb: String = f.get("verb")?;
        Ok(match verb.as_str() {
            "status" => Verb::Status {
                names: f.get("names")?,
            },
            "start" => Verb::Start {
                names: f.get("names")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "stop" => Verb::Stop {
                names: f.get("names")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "restart" => Verb::Restart {
                names: f.get("names")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "run" => Verb::Run {
                names: f.get("names")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "signal" => Verb::Signal {
                signal: f.get("signal")?,
                names: f.get("names")?,
            },
            "shutdown" => Verb::Shutdown,
            "wait" => Verb::Wait {
                names: f.get("names")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "health" => Verb::Health,
            "inspect" => Verb::Inspect,
            "logs" => Verb::Logs {
                names: f.get("names")?,
                lines: f.get("lines")?,
                follow: f.get("follow")?,
            },
            "reload" => Verb::Reload {
                dry_run: f.get("dry_run")?,
                timeout_ms: f.get("timeout_ms")?,
            },
            "action" => Verb::Action {
                service: f.get("service")?,
                name: f.get("name")?,
                args: f.get("args")?,
            },
            "actions" => Verb::Actions {
                names: f.get("names")?,
            },
            "events" => Verb::Events {
                names: f.get("names")?,
            },
            other => return Err(format!("unknown verb `{other}`")),
        })
    }
}

impl ToJson for Response {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        match self {
            Response::Ok { services, message } => {
                o.field("result", "ok")
                    .field("services", services)
                    .field("message", message);
            }
            Response::Error { kind, message } => {
                o.field("result", "error")
                    .field("kind", kind)
                    .field("message", message);
            }
            Response::Logs { lines } => {
                o.field("result", "logs").field("lines", lines);
            }
            Response::Inspect(doc) => {
                o.field("result", "inspect");
                doc.write_fields(&mut o);
            }
            Response::Actions { actions } => {
                o.field("result", "actions").field("actions", actions);
            }
            Response::Output(chunk) => {
                o.field("result", "output");
                chunk.write_fields(&mut o);
            }
            Response::Event(event) => {
                o.field("result", "event");
                event.write_fields(&mut o);
            }
            Response::Exited { code, message } => {
                o.field("result", "exited")
                    .field("code", code)
                    .field("message", message);
            }
        }
        o.end();
    }
}

impl FromJson for Response {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        let f = v.fields()?;
        let result: String = f.get("result")?;
        Ok(match result.as_str() {
            "ok" => Response::Ok {
                services: f.get("services")?,
                message: f.get("message")?,
            },
            "error" => Response::Error {
                kind: f.get("kind")?,
                message: f.get("message")?,
            },
            "logs" => Response::Logs {
                lines: f.get("lines")?,
            },
            "inspect" => Response::Inspect(Box::new(Inspect::from_fields(&f)?)),
            "actions" => Response::Actions {
                actions: f.get("actions")?,
            },
            "output" => Response::Output(Chunk::from_fields(&f)?),
            "event" => Response::Event(Box::new(EventLine::from_fields(&f)?)),
            "exited" => Response::Exited {
                code: f.get("code")?,
                message: f.get("message")?,
            },
            other => return Err(format!("unknown result `{other}`")),
        })
    }
}

json_object!(EventLine {
    time,
    service,
    event,
    from: omit_none,
    to: omit_none,
    pid: omit_none,
    exit: omit_none,
    ready_ms: omit_none,
    health: omit_none,
    output: omit_none,
    action: omit_none,
    code: omit_none,
    plan: omit_none,
    note: omit_none,
});

json_object!(ActionInfo {
    service,
    name,
    description,
    kind,
    when,
    timeout_ms,
    running,
});

json_object!(Chunk {
    stream,
    text: omit_none,
    base64: omit_none,
});

json_object!(LogLine {
    time,
    service,
    stream,
    line,
    continued,
});

json_object!(ServiceStatus {
    name,
    state,
    pid,
    uptime_ms,
    restarts,
    last_exit,
    enabled,
    user,
    note,
    kind,
    ready,
    ready_ms,
    health,
    health_output,
    status_text,
    dropped_lines,
    file_lost_lines,
    schedule: omit_none,
    actions,
});

json_object!(ScheduleStatus {
    when,
    next_run,
    last_run,
    last_exit,
    last_duration_ms,
    last_error,
    runs,
    skipped,
    queued,
});

json_object!(Inspect {
    images,
    runtime,
    services,
});

json_object!(Runtime {
    corral_version,
    corral_started,
    uptime_ms,
    hostname,
    main_command,
    first_started,
    starts,
});

/// `{"code": N}` or `{"signal": N}`.
impl ToJson for LastExit {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        match self {
            LastExit::Code(n) => o.field("code", n),
            LastExit::Signal(n) => o.field("signal", n),
        };
        o.end();
    }
}

impl FromJson for LastExit {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        let f = v.fields()?;
        match (f.value("code"), f.value("signal")) {
            (Some(n), None) => i32::from_json(n).map(LastExit::Code),
            (None, Some(n)) => i32::from_json(n).map(LastExit::Signal),
            _ => Err("expected {\"code\": N} or {\"signal\": N}".into()),
        }
    }
}

impl ErrorKind {
    fn word(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Failed => "failed",
            ErrorKind::Denied => "denied",
        }
    }
}

impl ToJson for ErrorKind {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.word().write_json(out);
    }
}

impl FromJson for ErrorKind {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        [ErrorKind::BadRequest, ErrorKind::Failed, ErrorKind::Denied]
            .into_iter()
            .find(|k| v.as_str() == Some(k.word()))
            .ok_or_else(|| "expected bad_request, failed or denied".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let verbs = [
            Verb::Status { names: vec![] },
            Verb::Start {
                names: vec!["a".into()],
                timeout_ms: 5,
            },
            Verb::Stop {
                names: vec!["a".into()],
                timeout_ms: 5,
            },
            Verb::Restart {
                names: vec!["b".into()],
                timeout_ms: 1,
            },
            Verb::Run {
                names: vec!["job".into()],
                timeout_ms: 2,
            },
            Verb::Signal {
                signal: "HUP".into(),
                names: vec!["a".into()],
            },
            Verb::Shutdown,
            Verb::Wait {
                names: vec![],
                timeout_ms: 9,
            },
            Verb::Health,
            Verb::Inspect,
            Verb::Reload {
                dry_run: true,
                timeout_ms: 5,
            },
            Verb::Logs {
                names: vec!["db".into()],
                lines: 10,
                follow: true,
            },
            Verb::Action {
                service: "web".into(),
                name: "validate".into(),
                args: vec!["--strict".into(), "a b".into()],
            },
            Verb::Actions { names: vec![] },
            Verb::Events {
                names: vec!["web".into()],
            },
        ];
        for verb in verbs {
            let req = Request {
                version: PROTOCOL_VERSION,
                verb,
            };
            let line = json::to_vec(&req);
            // The metrics label is the name on the wire.
            let text = std::str::from_utf8(&line).unwrap();
            let wire = json::parse(text).unwrap();
            let verb: String = wire.fields().unwrap().get("verb").unwrap();
            assert_eq!(verb, req.verb.name());
            assert_eq!(decode_request(&line).unwrap(), req);
        }
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(
            decode_request(b"{not json")
                .unwrap_err()
                .contains("malformed")
        );
        assert!(
            decode_request(br#"{"version":99,"verb":"status"}"#)
                .unwrap_err()
                .contains("version mismatch")
        );
        assert!(
            decode_request(br#"{"verb":"status"}"#)
                .unwrap_err()
                .contains("version mismatch")
        );
        assert!(
            decode_request(br#"{"version":1,"verb":"dance"}"#)
                .unwrap_err()
                .contains("malformed")
        );
    }

    #[test]
    fn mutated_requests_never_panic_and_get_a_reason() {
        use crate::config::mutate::{Rng, mutate};
        let seeds: Vec<Vec<u8>> = [
            r#"{"version":1,"verb":"status","names":["db"]}"#,
            r#"{"version":1,"verb":"restart","names":["a","b"],"timeout_ms":1000}"#,
            r#"{"version":1,"verb":"logs","names":[],"lines":10,"follow":true}"#,
            r#"{"version":1,"verb":"signal","signal":"HUP","names":["x"]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let mut rng = Rng(42);
        for i in 0..20_000 {
            let mut data = seeds[i % seeds.len()].clone();
            mutate(&mut rng, &mut data);
            if let Err(why) = decode_request(&data) {
                assert!(
                    why.contains("malformed") || why.contains("version"),
                    "{why}"
                );
            }
        }
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::Ok {
            services: vec![ServiceStatus {
                name: "db".into(),
                state: "running".into(),
                pid: Some(7),
                uptime_ms: Some(10),
                restarts: 1,
                last_exit: Some(LastExit::Signal(9)),
                enabled: true,
                user: Some("nobody".into()),
                schedule: None,
                note: None,
                kind: "longrun".into(),
                ready: true,
                ready_ms: Some(3),
                health: Some("healthy".into()),
                health_output: None,
                status_text: Some("serving".into()),
                dropped_lines: 0,
                file_lost_lines: 0,
                actions: vec!["validate".into()],
            }],
            message: None,
        };
        let text = json::to_string(&r);
        assert!(text.contains(r#""last_exit":{"signal":9}"#), "{text}");
        assert_eq!(json::from_str::<Response>(&text).unwrap(), r);
        for r in [
            Response::Output(Chunk::new("stdout", b"ok\n")),
            Response::Output(Chunk::new("stderr", &[0xff, 0, b'x'])),
            Response::Exited {
                code: 124,
                message: Some("timed out".into()),
            },
        ] {
            let text = json::to_string(&r);
            assert_eq!(json::from_str::<Response>(&text).unwrap(), r);
        }
    }

    /// Output that is not UTF-8 (a tar stream, a dump) reaches svctl
    /// byte for byte.
    #[test]
    fn chunks_carry_any_bytes() {
        let text = Chunk::new("stdout", "héllo\n".as_bytes());
        assert_eq!(text.text.as_deref(), Some("héllo\n"));
        assert_eq!(text.bytes().unwrap(), "héllo\n".as_bytes());
        let all: Vec<u8> = (0..=255).collect();
        let binary = Chunk::new("stdout", &all);
        assert!(binary.text.is_none());
        assert_eq!(binary.bytes().unwrap(), all);
    }
}
