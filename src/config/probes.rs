//! Validation of the `[ready]` and `[health]` tables and of the oneshot
//! keys: which method, which address, command or path, and the timings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::checker::Checker;

/// A check corral runs itself, again and again until it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect succeeds.
    Tcp(SocketAddr),
    /// A command exits 0 (run as the service's user).
    Exec(Vec<String>),
    /// The path exists.
    File(PathBuf),
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
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// `[ready]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    pub notify: Option<Spanned<bool>>,
    pub fd: Option<Spanned<i64>>,
    pub tcp: Option<Spanned<String>>,
    pub exec: Option<Spanned<Value>>,
    pub file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Value>>,
    pub interval: Option<Spanned<Value>>,
}

/// `[health]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub tcp: Option<Spanned<String>>,
    pub exec: Option<Spanned<Value>>,
    pub interval: Option<Spanned<Value>>,
    pub timeout: Option<Spanned<Value>>,
    pub retries: Option<Spanned<i64>>,
    pub start_period: Option<Spanned<Value>>,
    pub on_unhealthy: Option<Spanned<String>>,
}

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
        && let Some(a) = tcp(c, addr, "ready.tcp")
    {
        methods.push(ReadyMethod::Poll(Probe::Tcp(a)));
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
    match (given, methods.pop()) {
        (1, Some(method)) => Some(ReadySpec {
            method,
            timeout,
            interval,
        }),
        (0, _) => {
            c.error(table, "[ready] names no method: add one of notify = true, fd = N, tcp = \"ADDR:PORT\", exec = \"CMD\", file = \"/PATH\"");
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
            c.error(table, "[ready] names more than one method: keep exactly one of notify, fd, tcp, exec, file");
            None
        }
    }
}

/// Validates `[health]`.
pub fn health(c: &mut Checker<'_>, table: &Spanned<RawHealth>) -> Option<HealthSpec> {
    let h = table.get_ref();
    let probe = match (&h.tcp, &h.exec) {
        (Some(addr), None) => tcp(c, addr, "health.tcp").map(Probe::Tcp),
        (None, Some(cmd)) => exec(c, cmd, "health.exec").map(Probe::Exec),
        (Some(_), Some(_)) => {
            c.error(table, "[health] names both tcp and exec: keep one");
            None
        }
        (None, None) => {
            c.error(
                table,
                "[health] names no check: add exec = \"CMD\" or tcp = \"ADDR:PORT\"",
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

/// `"127.0.0.1:5432"`, `"[::1]:80"` or `"localhost:80"`. No name lookup:
/// corral is static and has no resolver.
fn tcp(c: &mut Checker<'_>, v: &Spanned<String>, key: &str) -> Option<SocketAddr> {
    let text = v.get_ref();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Some(port) = text
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    c.error(v, format!("{key} = \"{text}\" is not an address: write IP:PORT such as \"127.0.0.1:5432\" or \"[::1]:80\" (no host names)"));
    None
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
