//! The Prometheus text exposition format (version 0.0.4) and the series
//! corral exposes in it. Pure: the runtime gathers a `Snapshot`, this
//! writes it. Hand-written rather than a crate: the format is a few rules
//! (one `# HELP` and `# TYPE` per family, a family's samples together,
//! label values escaped), and the well-known crates bring a registry and
//! atomics corral does not need. The rules are tested here and by promtool.

use std::fmt::Write as _;

/// The content type of what `render` writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state word a service can be shown in (`svctl status`), the values
/// of `corral_service_state`'s `state` label.
pub const STATE_WORDS: [&str; 9] = [
    "stopped",
    "starting",
    "blocked",
    "running",
    "stopping",
    "finishing",
    "backoff",
    "failed",
    "exited",
];

/// What metrics say about one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSample {
    pub name: String,
    /// One of `STATE_WORDS`.
    pub state: &'static str,
    /// Running and ready (a longrun), done successfully (a oneshot).
    pub up: bool,
    /// The health verdict of the current process; `None` without
    /// `[health]`.
    pub healthy: Option<bool>,
    pub starts: u64,
    pub restarts: u64,
    pub failures: u64,
    /// Unix time the current process started, while there is one.
    pub start_time: Option<f64>,
    /// The last exit's code, 128+N for signal N.
    pub last_exit_code: Option<i32>,
    /// Lines relayed from stdout and stderr.
    pub log_lines: [u64; 2],
    /// Lines the container log did not get, and lines the log file did not.
    pub log_dropped: u64,
    pub log_file_lost: u64,
    pub schedule: Option<ScheduleSample>,
}

/// A scheduled job's part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleSample {
    /// Unix time of the next run, when one is planned.
    pub next_run: Option<f64>,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// corral's own process, from /proc.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub start_time: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// By name.
    pub services: Vec<ServiceSample>,
    pub orphans_reaped: u64,
    /// Control requests by verb (`invalid` for undecodable ones), sorted.
    pub requests: Vec<(&'static str, u64)>,
    pub process: Option<ProcessSample>,
    pub version: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
}

/// A sample's value: counts stay exact integers.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Int(n.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Int(b.into())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

/// Writes families one after the other.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: Type, help: &str) {
        let kind = match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(val, true));
            }
            self.out.push('}');
        }
        let _ = match value.into() {
            Value::Int(n) => writeln!(self.out, " {n}"),
            Value::Float(x) if x.is_nan() => writeln!(self.out, " NaN"),
            Value::Float(x) if x.is_infinite() => {
                writeln!(self.out, " {}Inf", if x > 0.0 { "+" } else { "-" })
            }
            Value::Float(x) => writeln!(self.out, " {x}"),
        };
    }

    /// A family with one sample per service that has a value.
    fn per_service<V: Into<Value>>(
        &mut self,
        snap: &Snapshot,
        name: &str,
        kind: Type,
        help: &str,
        value: impl Fn(&ServiceSample) -> Option<V>,
    ) {
        self.family(name, kind, help);
        for s in &snap.services {
            if let Some(v) = value(s) {
                self.sample(name, &[("service", &s.name)], v);
            }
        }
    }
}

/// `text` escaped for a label value (`\`, `"`, newline) or a HELP line
/// (`\`, newline).
fn escape(text: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\n', '"']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

/// The whole exposition of `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut t = Text {
        out: String::with_capacity(1024 + snap.services.len() * 1536),
    };
    t.family(
        "corral_service_state",
        Type::Gauge,
        "1 for the state the service is in (as svctl status shows it), 0 for the others.",
    );
    for s in &snap.services {
        for word in STATE_WORDS {
            t.sample(
                "corral_service_state",
                &[("service", &s.name), ("state", word)],
                s.state == word,
            );
        }
    }
    t.per_service(
        snap,
        "corral_service_up",
        Type::Gauge,
        "1 when the service is up: a longrun running and ready, a oneshot done successfully.",
        |s| Some(s.up),
    );
    t.per_service(
        snap,
        "corral_service_healthy",
        Type::Gauge,
        "1 when the current process's health checks pass, 0 otherwise; only services with [health].",
        |s| s.healthy,
    );
    t.per_service(
        snap,
        "corral_service_starts_total",
        Type::Counter,
        "Processes started since corral started.",
        |s| Some(s.starts),
    );
    t.per_service(
        snap,
        "corral_service_restarts_total",
        Type::Counter,
        "Restarts since corral started, automatic and requested.",
        |s| Some(s.restarts),
    );
    t.per_service(
        snap,
        "corral_service_failures_total",
        Type::Counter,
        "Failures since corral started: a start without a process, a failure exit, not ready in time, turning unhealthy.",
        |s| Some(s.failures),
    );
    t.per_service(
        snap,
        "corral_service_start_time_seconds",
        Type::Gauge,
        "Unix time the current process started; only while it has one.",
        |s| s.start_time,
    );
    t.per_service(
        snap,
        "corral_service_last_exit_code",
        Type::Gauge,
        "Exit code of the last process that ended, 128+N for signal N.",
        |s| s.last_exit_code,
    );
    t.family(
        "corral_log_lines_total",
        Type::Counter,
        "Lines relayed from the service's stdout and stderr (its actions' included).",
    );
    for s in &snap.services {
        for (stream, n) in ["stdout", "stderr"].into_iter().zip(s.log_lines) {
            t.sample(
                "corral_log_lines_total",
                &[("service", &s.name), ("stream", stream)],
                n,
            );
        }
    }
    t.per_service(
        snap,
        "corral_log_dropped_lines_total",
        Type::Counter,
        "Lines the container log did not get (on_full = \"drop\", a broken stdout or stderr).",
        |s| Some(s.log_dropped),
    );
    t.per_service(
        snap,
        "corral_log_file_lost_lines_total",
        Type::Counter,
        "Lines the service's log file did not get (disk full, a file corral refused to write).",
        |s| Some(s.log_file_lost),
    );
    t.per_service(
        snap,
        "corral_schedule_next_run_timestamp_seconds",
        Type::Gauge,
        "Unix time of a scheduled job's next run; only when one is planned.",
        |s| s.schedule.as_ref()?.next_run,
    );
    t.family(
        "corral_schedule_runs_total",
        Type::Counter,
        "Runs of a scheduled job that ended (success: exit 0; failure: anything else), and due times skipped.",
    );
    for s in &snap.services {
        let Some(sc) = &s.schedule else { continue };
        for (result, n) in [
            ("success", sc.succeeded),
            ("failure", sc.failed),
            ("skipped", sc.skipped),
        ] {
            t.sample(
                "corral_schedule_runs_total",
                &[("service", &s.name), ("result", result)],
                n,
            );
        }
    }
    t.family(
        "corral_orphans_reaped_total",
        Type::Counter,
        "Processes that were no service's, re-parented to corral and reaped.",
    );
    t.sample("corral_orphans_reaped_total", &[], snap.orphans_reaped);
    t.family(
        "corral_control_requests_total",
        Type::Counter,
        "Requests on the control socket (svctl), by verb; invalid: not understood.",
    );
    for (verb, n) in &snap.requests {
        t.sample("corral_control_requests_total", &[("verb", verb)], *n);
    }
    t.family(
        "corral_build_info",
        Type::Gauge,
        "Always 1; the version of corral as a label.",
    );
    t.sample("corral_build_info", &[("version", snap.version)], 1u64);
    if let Some(p) = &snap.process {
        process_families(&mut t, p);
    }
    t.out
}

/// The standard process series, named as Prometheus' client libraries
/// name them.
fn process_families(t: &mut Text, p: &ProcessSample) {
    let gauges: [(&str, &str, Value); 4] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes.into(),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes.into(),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time.into(),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds.into(),
        ),
    ];
    for (name, help, value) in gauges {
        t.family(name, Type::Gauge, help);
        t.sample(name, &[], value);
    }
    if let Some(max) = p.max_fds {
        t.family(
            "process_max_fds",
            Type::Gauge,
            "Maximum number of open file descriptors.",
        );
        t.sample("process_max_fds", &[], max);
    }
    t.family(
        "process_cpu_seconds_total",
        Type::Counter,
        "Total user and system CPU time spent in seconds.",
    );
    t.sample("process_cpu_seconds_total", &[], p.cpu_seconds);
}

#[cfg(test)]
pub mod tests;
