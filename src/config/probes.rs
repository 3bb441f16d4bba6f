//! Validation of the `[ready]` and `[health]` tables and of the oneshot
//! keys: which method, which address, command or path, and the timings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{Value, from_table};

use super::checker::Checker;

/// A check corral runs itself, again and again until it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect succeeds; with `expect`, the first bytes the server
    /// sends must start with it (an SMTP or IMAP greeting).
    Tcp {
        addr: SocketAddr,
        expect: Option<String>,
    },
    /// An HTTP GET answers 2xx or 3xx.
    Http(HttpCheck),
    /// A command exits 0 (run as the service's user).
    Exec(Vec<String>),
    /// The path exists.
    File(PathBuf),
}

/// A plain-HTTP GET: where to connect, and the request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub addr: SocketAddr,
    /// The `Host` header: the URL's host and port as written.
    pub host: String,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl HttpCheck {
    /// The whole request. HTTP/1.1 with `Connection: close`: the server
    /// answers once and closes, and only the status line is read.
    pub fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: corral\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.host
        )
        .into_bytes()
    }
}

/// How a service says it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyMethod {
    /// The systemd notify protocol: `READY=1` on `NOTIFY_SOCKET`.
    Notify,
    /// The s6 convention: a newline on this descriptor.
    Fd(i32),
    /// corral polls.
    Poll(Probe),
}

/// A validated `[ready]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadySpec {
    pub method: ReadyMethod,
    /// Not ready by then: the start counts as failed (stop, then the
    /// restart policy).
    pub timeout: Duration,
    /// Between polls.
    pub interval: Duration,
    /// One polled check still unanswered after this has failed (it is
    /// abandoned, and the next one follows after `interval`).
    pub check_timeout: Duration,
}

/// What an unhealthy service gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnhealthy {
    Restart,
    Nothing,
}

/// A validated `[health]` table (Docker HEALTHCHECK semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub probe: Probe,
    pub interval: Duration,
    /// One check taking longer fails.
    pub timeout: Duration,
    /// Failures in a row that make the service unhealthy.
    pub retries: u32,
    /// Failures during this time after the start do not count.
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

/// Longrun (the default) or oneshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Longrun,
    Oneshot {
        /// Killed and failed when still running after this.
        timeout: Option<Duration>,
        /// A failure neither blocks dependents nor stops the container.
        optional: bool,
    },
}

pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(200);
pub const DEFAULT_READY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// `[ready]` as written.
#[derive(Debug, Default)]
pub struct RawReady {
    pub notify: Option<Spanned<bool>>,
    pub fd: Option<Spanned<i64>>,
    pub tcp: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
    pub exec: Option<Spanned<Value>>,
    pub file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Value>>,
    pub interval: Option<Spanned<Value>>,
    pub check_timeout: Option<Spanned<Value>>,
}

from_table!(RawReady {
    notify,
    fd,
    tcp,
    expect,
    http,
    exec,
    file,
    timeout,
    interval,
    check_timeout,
});

/// `[health]` as written.
#[derive(Debug, Default)]
pub struct RawHealth {
    pub tcp: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
    pub exec: Option<Spanned<Value>>,
    pub interval: Option<Spanned<Value>>,
    pub timeout: Option<Spanned<Value>>,
    pub retries: Option<Spanned<i64>>,
    pub start_period: Option<Spanned<Value>>,
    pub on_unhealthy: Option<Spanned<String>>,
}

from_table!(RawHealth {
    tcp,
    expect,
    http,
    exec,
    interval,
    timeout,
    retries,
    start_period,
    on_unhealthy,
});

/// Validates `[ready]`; `table` spans the whole table for errors that
/// concern no single key.
pub fn ready(
    c: &mut Checker<'_>,
    table: &Spanned<RawReady>,
    warnings: &mut Vec<String>,
) -> Option<ReadySpec> {
    let r = table.get_ref();
    let mut methods = Vec::new();
    if r.notify.as_ref().is_some_and(|n| *n.get_ref()) {
        methods.push(ReadyMethod::Notify);
    }
    if let Some(fd) = &r.fd {
        match i32::try_from(*fd.get_ref()) {
            Ok(n) if (3..=1023).contains(&n) => methods.push(ReadyMethod::Fd(n)),
            _ => c.error(
                fd,
                "ready.fd must be a descriptor number from 3 to 1023 (0, 1 and 2 are stdio)",
            ),
        }
    }
    if let Some(addr) = &r.tcp
        && let Some(probe) = tcp(c, addr, &r.expect, "ready")
    {
        methods.push(ReadyMethod::Poll(probe));
    }
    if r.tcp.is_none() {
        expect_without_tcp(c, &r.expect, "ready");
    }
    if let Some(url) = &r.http
        && let Some(h) = http(c, url, "ready.http")
    {
        methods.push(ReadyMethod::Poll(Probe::Http(h)));
    }
    if let Some(cmd) = &r.exec
        && let Some(argv) = exec(c, cmd, "ready.exec")
    {
        methods.push(ReadyMethod::Poll(Probe::Exec(argv)));
    }
    if let Some(path) = &r.file {
        let p = PathBuf::from(path.get_ref());
        if !p.is_absolute() {
            c.error(
                path,
                format!("ready.file `{}` must be an absolute path", p.display()),
            );
        } else {
            if p.parent().is_some_and(|d| !d.exists()) {
                warnings.push(format!(
                    "{}:{}: ready.file {}: its directory does not exist now; something must create it at run time",
                    c.source.path.display(),
                    c.source.line_of(path.span().start),
                    p.display()
                ));
            }
            methods.push(ReadyMethod::Poll(Probe::File(p)));
        }
    }
    let given = [
        r.notify.is_some(),
        r.fd.is_some(),
        r.tcp.is_some(),
        r.http.is_some(),
        r.exec.is_some(),
        r.file.is_some(),
    ]
    .into_iter()
    .filter(|&b| b)
    .count();
    let timeout = c.duration(&r.timeout, "ready.timeout", DEFAULT_READY_TIMEOUT);
    let interval = c.duration(&r.interval, "ready.interval", DEFAULT_READY_INTERVAL);
    if let Some(i) = &r.interval
        && interval.is_zero()
    {
        c.error(i, "ready.interval must be more than 0");
    }
    let check_timeout = c.duration(
        &r.check_timeout,
        "ready.check_timeout",
        DEFAULT_READY_CHECK_TIMEOUT,
    );
    if let Some(t) = &r.check_timeout {
        if check_timeout.is_zero() {
            c.error(t, "ready.check_timeout must be more than 0");
        }
        if r.notify.is_some() || r.fd.is_some() {
            c.error(
                t,
                "ready.check_timeout applies to checks corral runs (tcp, http, exec, file), not to notify or fd",
            );
        }
    }
    match (given, methods.pop()) {
        (1, Some(method)) => Some(ReadySpec {
            method,
            timeout,
            interval,
            check_timeout,
        }),
        (0, _) => {
            c.error(table, "[ready] names no method: add one of notify = true, fd = N, tcp = \"ADDR:PORT\", http = \"http://ADDR:PORT/PATH\", exec = \"CMD\", file = \"/PATH\"");
            None
        }
        (1, None) if r.notify.is_some() => {
            c.error(
                table,
                "ready: notify = false names no method; remove [ready] or set notify = true",
            );
            None
        }
        (1, None) => None,
        _ => {
            c.error(table, "[ready] names more than one method: keep exactly one of notify, fd, tcp, http, exec, file");
            None
        }
    }
}

/// Validates `[health]`.
pub fn health(c: &mut Checker<'_>, table: &Spanned<RawHealth>) -> Option<HealthSpec> {
    let h = table.get_ref();
    if h.tcp.is_none() {
        expect_without_tcp(c, &h.expect, "health");
    }
    let probe = match (&h.tcp, &h.http, &h.exec) {
        (Some(addr), None, None) => tcp(c, addr, &h.expect, "health"),
        (None, Some(url), None) => http(c, url, "health.http").map(Probe::Http),
        (None, None, Some(cmd)) => exec(c, cmd, "health.exec").map(Probe::Exec),
        (None, None, None) => {
            c.error(
                table,
                "[health] names no check: add exec = \"CMD\", tcp = \"ADDR:PORT\" or http = \"http://ADDR:PORT/PATH\"",
            );
            None
        }
        _ => {
            c.error(
                table,
                "[health] names more than one check: keep exactly one of tcp, http, exec",
            );
            None
        }
    };
    let interval = c.duration(&h.interval, "health.interval", DEFAULT_HEALTH_INTERVAL);
    let timeout = c.duration(&h.timeout, "health.timeout", DEFAULT_HEALTH_TIMEOUT);
    let start_period = c.duration(&h.start_period, "health.start_period", Duration::ZERO);
    for (value, key, d) in [
        (&h.interval, "health.interval", interval),
        (&h.timeout, "health.timeout", timeout),
    ] {
        if let (Some(v), true) = (value, d.is_zero()) {
            c.error(v, format!("{key} must be more than 0"));
        }
    }
    let retries = match &h.retries {
        None => DEFAULT_HEALTH_RETRIES,
        Some(r) => match u32::try_from(*r.get_ref()) {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                c.error(r, "health.retries must be between 1 and 1000");
                DEFAULT_HEALTH_RETRIES
            }
        },
    };
    let on_unhealthy = match h.on_unhealthy.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "none")) => OnUnhealthy::Nothing,
        Some((_, "restart")) => OnUnhealthy::Restart,
        Some((v, other)) => {
            c.error(
                v,
                format!("health.on_unhealthy = \"{other}\": use \"restart\" or \"none\""),
            );
            OnUnhealthy::Nothing
        }
    };
    Some(HealthSpec {
        probe: probe?,
        interval,
        timeout,
        retries,
        start_period,
        on_unhealthy,
    })
}

/// `type`, `timeout` and `optional`.
pub fn kind(
    c: &mut Checker<'_>,
    kind: Option<&Spanned<String>>,
    timeout: &Option<Spanned<Value>>,
    optional: Option<&Spanned<bool>>,
) -> Kind {
    match kind.map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "longrun")) => {
            if let Some(t) = timeout {
                c.error(
                    t,
                    "timeout applies to oneshots; a longrun's start is bounded by [ready] timeout",
                );
            }
            if let Some(o) = optional {
                c.error(o, "optional applies to oneshots (type = \"oneshot\")");
            }
            Kind::Longrun
        }
        Some((_, "oneshot")) => Kind::Oneshot {
            timeout: timeout
                .as_ref()
                .map(|_| c.duration(timeout, "timeout", Duration::ZERO)),
            optional: optional.is_some_and(|o| *o.get_ref()),
        },
        Some((k, other)) => {
            c.error(k, format!("type = \"{other}\": use \"longrun\" (a daemon) or \"oneshot\" (runs once to completion)"));
            Kind::Longrun
        }
    }
}

/// The longest `expect`: a greeting's first words, not a transcript.
const MAX_EXPECT: usize = 256;

/// `tcp` with its optional `expect`, in `[table]`.
fn tcp(
    c: &mut Checker<'_>,
    v: &Spanned<String>,
    expect: &Option<Spanned<String>>,
    table: &str,
) -> Option<Probe> {
    let expect = match expect {
        None => None,
        Some(e) if e.get_ref().is_empty() => {
            c.error(
                e,
                format!("{table}.expect is empty: give the first bytes the server sends, e.g. \"220\" for SMTP, or remove it"),
            );
            None
        }
        Some(e) if e.get_ref().len() > MAX_EXPECT => {
            c.error(
                e,
                format!("{table}.expect is longer than {MAX_EXPECT} bytes: keep the start of the greeting"),
            );
            None
        }
        Some(e) => Some(e.get_ref().clone()),
    };
    let text = v.get_ref();
    match address(text) {
        Some(addr) => Some(Probe::Tcp { addr, expect }),
        None => {
            c.error(v, format!("{table}.tcp = \"{text}\" is not an address: write IP:PORT such as \"127.0.0.1:5432\" or \"[::1]:80\" (no host names)"));
            None
        }
    }
}

/// `expect` belongs to `tcp`.
fn expect_without_tcp(c: &mut Checker<'_>, expect: &Option<Spanned<String>>, table: &str) {
    if let Some(e) = expect {
        c.error(
            e,
            format!(
                "{table}.expect applies to tcp checks: add tcp = \"ADDR:PORT\" or remove expect"
            ),
        );
    }
}

/// `"127.0.0.1:5432"`, `"[::1]:80"` or `"localhost:80"`. No name lookup:
/// corral is static and has no resolver.
fn address(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    let port = text.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

/// `http://HOST[:PORT][/PATH]`, HOST an IP address or `localhost`.
fn http(c: &mut Checker<'_>, v: &Spanned<String>, key: &str) -> Option<HttpCheck> {
    match parse_http(v.get_ref()) {
        Ok(h) => Some(h),
        Err(why) => {
            c.error(v, format!("{key} = \"{}\": {why}", v.get_ref()));
            None
        }
    }
}

fn parse_http(url: &str) -> Result<HttpCheck, String> {
    if url.starts_with("https://") {
        return Err("corral checks plain HTTP only (no TLS): point it at a plain-HTTP port, or use exec with a client such as curl".into());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or("write a URL such as \"http://127.0.0.1:8080/healthz\"")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    if path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(
            "the path has a space, a control character or a non-ASCII character: percent-encode it"
                .into(),
        );
    }
    if authority.contains('@') {
        return Err("user names and passwords in the URL are not supported".into());
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addr = address(&with_port).ok_or(
        "the host must be an IP address or localhost, with an optional port (no name lookup: corral has no resolver)",
    )?;
    Ok(HttpCheck {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// A string for `/bin/sh -c`, or an argv array.
fn exec(c: &mut Checker<'_>, v: &Spanned<Value>, key: &str) -> Option<Vec<String>> {
    match v.get_ref() {
        Value::String(s) if !s.trim().is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), s.clone()])
        }
        Value::Array(items) => {
            let argv: Option<Vec<String>> =
                items.iter().map(|i| i.as_str().map(String::from)).collect();
            match argv {
                Some(argv) if argv.first().is_some_and(|p| !p.is_empty()) => Some(argv),
                _ => {
                    c.error(v, format!("{key} must be a non-empty list of strings"));
                    None
                }
            }
        }
        _ => {
            c.error(
                v,
                format!("{key} must be a command string or a list of strings"),
            );
            None
        }
    }
}
