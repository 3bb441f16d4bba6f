//! The first look at a parsed service file: every unknown key (with the
//! nearest known one) and every value of the wrong kind, each with its
//! line, in plain words, all of them: a file with two typos shows both.
//!
//! The keys listed here are the fields of `raw.rs`'s structs; a unit test
//! holds the two together.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigError, Source};

/// What a key's value may be.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want {
    Str,
    /// One of these strings; the loader's own match is the authority, a
    /// test holds the two equal.
    Choice(&'static [&'static str]),
    Int,
    Bool,
    StrList,
    /// An array of integers (`success_exit_codes`).
    IntList,
    /// A user or group: a name or a number.
    NameOrId,
    /// A duration: `"5s"` or a number of seconds.
    Duration,
    /// A size: `"10MiB"` or a number of bytes.
    Size,
    /// A signal: `"SIGTERM"` or a number.
    Signal,
    /// A check command: a shell string or an argv list.
    Command,
    /// A table of strings (`env`).
    StrMap,
    /// A group (name or number), or `true` (an action's signal goes to
    /// the process group).
    GroupOrFlag,
    Table(&'static [Key]),
    /// Named tables, each with these keys (`[actions.NAME]`).
    Map(&'static [Key]),
    /// An array of tables, each with these keys (`[[prepare]]`).
    TableList(&'static [Key]),
}

/// One key of a service file: what it takes, what a file without it gets,
/// and what it does. `corral schema` is written from these.
#[derive(Debug)]
pub(super) struct Key {
    pub name: &'static str,
    pub want: Want,
    /// The value a file that leaves the key out gets, as TOML text; `None`
    /// when there is no fixed value (`about` says what happens). A test
    /// loads every default written out and finds nothing changed.
    pub default: Option<&'static str>,
    pub about: &'static str,
}

const fn key(
    name: &'static str,
    want: Want,
    default: Option<&'static str>,
    about: &'static str,
) -> Key {
    Key {
        name,
        want,
        default,
        about,
    }
}

pub(super) const READY: &[Key] = &[
    key(
        "notify",
        Want::Bool,
        None,
        "ready when the service sends READY=1 over the systemd notify protocol (NOTIFY_SOCKET)",
    ),
    key(
        "fd",
        Want::Int,
        None,
        "ready when the service writes a newline on this descriptor, 3 to 1023 (the s6 convention)",
    ),
    key(
        "tcp",
        Want::Str,
        None,
        "ready when a TCP connect to IP:PORT (or localhost:PORT) succeeds; no name lookup",
    ),
    key(
        "expect",
        Want::Str,
        None,
        "with tcp: the first bytes the server sends must start with this, e.g. \"220\" for SMTP",
    ),
    key(
        "http",
        Want::Str,
        None,
        "ready when a GET of this plain-HTTP URL (http://IP:PORT/PATH) answers 2xx or 3xx",
    ),
    key(
        "exec",
        Want::Command,
        None,
        "ready when this command exits 0 (a string for /bin/sh -c, or an argv list); runs as the service's user",
    ),
    key(
        "file",
        Want::Str,
        None,
        "ready when this absolute path exists",
    ),
    key(
        "timeout",
        Want::Duration,
        Some("\"30s\""),
        "not ready by then: the start has failed (stopped, then the restart policy)",
    ),
    key(
        "interval",
        Want::Duration,
        Some("\"200ms\""),
        "between polls of tcp, http, exec and file",
    ),
    key(
        "check_timeout",
        Want::Duration,
        Some("\"5s\""),
        "one polled check not answered by then has failed",
    ),
];

pub(super) const HEALTH: &[Key] = &[
    key(
        "tcp",
        Want::Str,
        None,
        "healthy when a TCP connect to IP:PORT succeeds",
    ),
    key(
        "expect",
        Want::Str,
        None,
        "with tcp: the first bytes the server sends must start with this",
    ),
    key(
        "http",
        Want::Str,
        None,
        "healthy when a GET of this plain-HTTP URL answers 2xx or 3xx",
    ),
    key(
        "exec",
        Want::Command,
        None,
        "healthy when this command exits 0 (a string for /bin/sh -c, or an argv list)",
    ),
    key(
        "interval",
        Want::Duration,
        Some("\"30s\""),
        "between checks; the first one this long after the service became ready",
    ),
    key(
        "timeout",
        Want::Duration,
        Some("\"30s\""),
        "a check taking longer fails",
    ),
    key(
        "retries",
        Want::Int,
        Some("3"),
        "failures in a row that make the service unhealthy, 1 to 1000",
    ),
    key(
        "start_period",
        Want::Duration,
        Some("\"0s\""),
        "failures this soon after the start do not count",
    ),
    key(
        "on_unhealthy",
        Want::Choice(&["none", "restart"]),
        Some("\"none\""),
        "restart: restart the service when it turns unhealthy",
    ),
];

pub(super) const LOG: &[Key] = &[
    key(
        "format",
        Want::Choice(&["prefix", "json", "raw", "inherit"]),
        None,
        "how lines reach the console (default: CORRAL_LOG_FORMAT, else prefix); inherit gives the service corral's stdout and stderr",
    ),
    key(
        "timestamps",
        Want::Bool,
        None,
        "prefix lines with RFC 3339 times (default: CORRAL_LOG_TIMESTAMPS)",
    ),
    key(
        "on_full",
        Want::Choice(&["block", "drop"]),
        Some("\"block\""),
        "when the console cannot keep up: block the service's writes, or drop and count lines",
    ),
    key(
        "ring_lines",
        Want::Int,
        Some("1000"),
        "lines kept in memory for svctl logs",
    ),
    key(
        "ring_size",
        Want::Size,
        Some("\"256KiB\""),
        "bytes kept in memory for svctl logs",
    ),
    key(
        "file",
        Want::Str,
        None,
        "also write the lines to this absolute path, rotated by size",
    ),
    key(
        "max_size",
        Want::Size,
        Some("\"10MiB\""),
        "with file: rotate before the file grows past this",
    ),
    key(
        "keep",
        Want::Int,
        Some("5"),
        "with file: rotated files kept (current.1 ... current.N)",
    ),
];

pub(super) const SCHEDULE: &[Key] = &[
    key(
        "cron",
        Want::Str,
        None,
        "a cron expression: 5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly",
    ),
    key(
        "every",
        Want::Duration,
        None,
        "run every period of elapsed time, first one period after start (at least 1s)",
    ),
    key(
        "at_start",
        Want::Bool,
        Some("false"),
        "also run once at boot",
    ),
    key(
        "timezone",
        Want::Str,
        None,
        "with cron: an IANA zone (Europe/Berlin), a POSIX TZ rule, or UTC (default: the container's TZ, else UTC)",
    ),
    key(
        "overlap",
        Want::Choice(&["skip", "queue", "replace"]),
        Some("\"skip\""),
        "a run due while the last one still runs: skipped and counted, queued to run right after, or replacing it",
    ),
    key(
        "jitter",
        Want::Duration,
        Some("\"0s\""),
        "start each run up to this much after its due time, drawn per run",
    ),
    key(
        "missed",
        Want::Choice(&["skip", "run-once"]),
        Some("\"skip\""),
        "due times that passed unnoticed (sleep, clock jump, pause): skipped and counted, or one run now",
    ),
];

/// Every key of one `[actions.NAME]` table.
pub(super) const ACTION: &[Key] = &[
    key(
        "command",
        Want::StrList,
        None,
        "program and arguments; the caller's arguments are appended; exactly one of command, run and signal",
    ),
    key(
        "run",
        Want::Str,
        None,
        "a shell script for /bin/sh -c; the caller's arguments are $1, $2, ...",
    ),
    key(
        "signal",
        Want::Signal,
        None,
        "send this signal to the service's main process instead of running a command",
    ),
    key(
        "user",
        Want::NameOrId,
        None,
        "run the command as this user (default: the service's)",
    ),
    key(
        "group",
        Want::GroupOrFlag,
        None,
        "a command's group (default: the user's, else the service's); with signal, true sends it to the process group",
    ),
    key(
        "timeout",
        Want::Duration,
        Some("\"60s\""),
        "then SIGTERM to the action's process group, SIGKILL 5s later; svctl exits 124",
    ),
    key("description", Want::Str, None, "one line for svctl actions"),
    key(
        "when",
        Want::Choice(&["running", "any"]),
        Some("\"running\""),
        "running: refused unless the service has a running process; any: whatever its state",
    ),
];

/// `{ from = "...", to = "..." }` of copy and render.
pub(super) const FROM_TO: &[Key] = &[
    key(
        "from",
        Want::Str,
        None,
        "the source: an absolute path, or one relative to the service file's directory",
    ),
    key("to", Want::Str, None, "absolute path of the result"),
];

/// Every key of one `[[prepare]]` step.
pub(super) const PREPARE: &[Key] = &[
    key(
        "mkdir",
        Want::Str,
        None,
        "make this directory (and its parents); an existing one gets mode and owner, its contents untouched",
    ),
    key(
        "chown",
        Want::Str,
        None,
        "give this tree to owner: not following symbolic links, not crossing file systems, only what differs",
    ),
    key(
        "copy",
        Want::Table(FROM_TO),
        None,
        "copy from into to (modes and symbolic links kept) only when to is missing or empty",
    ),
    key(
        "render",
        Want::Table(FROM_TO),
        None,
        "write to from the template from: ${VAR}, ${VAR:-default} and $$ replaced from the service's environment",
    ),
    key(
        "mode",
        Want::Str,
        None,
        "octal mode of mkdir (default \"0755\") or render (default \"0644\")",
    ),
    key(
        "owner",
        Want::Str,
        None,
        "\"root\", \"user\" or \"user:group\" (default: the service's user and group)",
    ),
];

/// Every key of an image metadata file (`metadata.d/NN-name.toml`).
pub(super) const METADATA: &[Key] = &[
    key("name", Want::Str, None, "the image's name, e.g. rbldnsd"),
    key("version", Want::Str, None, "its version"),
    key(
        "build_time",
        Want::Str,
        None,
        "when it was built, RFC 3339 (2026-11-30T10:00:00Z)",
    ),
    key(
        "gitref",
        Want::Str,
        None,
        "the commit or tag it was built from",
    ),
    key(
        "url",
        Want::Str,
        None,
        "where it comes from or is documented",
    ),
    key("description", Want::Str, None, "what it is, in a line"),
    key(
        "labels",
        Want::StrMap,
        Some("{}"),
        "free facts: a table of strings",
    ),
];

/// Every key of a service file.
pub(super) const SERVICE: &[Key] = &[
    key(
        "command",
        Want::StrList,
        None,
        "program and arguments; exactly one of command and run",
    ),
    key(
        "run",
        Want::Str,
        None,
        "a shell script for /bin/sh -c (end it with exec daemon); exactly one of command and run",
    ),
    key(
        "user",
        Want::NameOrId,
        None,
        "drop to this user (name or uid): its groups, then its gid, then its uid (default: corral's)",
    ),
    key(
        "group",
        Want::NameOrId,
        None,
        "primary group (default: the user's)",
    ),
    key(
        "requires",
        Want::StrList,
        Some("[]"),
        "services that must be ready before this one starts",
    ),
    key(
        "env",
        Want::StrMap,
        Some("{}"),
        "added to the environment; overrides corral's and HOME, USER, LOGNAME",
    ),
    key(
        "env_file",
        Want::StrList,
        Some("[]"),
        "files of KEY=VALUE lines read at each start (a leading - : may be missing); env overrides them",
    ),
    key(
        "env_from_file",
        Want::StrMap,
        Some("{}"),
        "variables whose value is a file's content, read at each start (Docker and Kubernetes secrets)",
    ),
    key(
        "enabled_env",
        Want::Str,
        None,
        "a variable of corral's environment: 1/true/yes/on enables the service, 0/false/no/off disables it",
    ),
    key(
        "user_env",
        Want::Str,
        None,
        "a variable of corral's environment holding UID or UID:GID, used instead of user's ids (a volume's owner)",
    ),
    key(
        "working_dir",
        Want::Str,
        None,
        "absolute path to start in (default: corral's)",
    ),
    key(
        "pidfile",
        Want::Str,
        None,
        "for a command that daemonizes itself: the daemon's pid is read from this absolute path and that process is supervised",
    ),
    key(
        "restart",
        Want::Choice(&["always", "on-failure", "never"]),
        Some("\"always\""),
        "which exits are restarted: every one, non-zero exits and deaths by signal, or none",
    ),
    key(
        "restart_delay",
        Want::Duration,
        Some("\"100ms\""),
        "delay before the first restart, doubled after each quick failure",
    ),
    key(
        "restart_delay_max",
        Want::Duration,
        Some("\"30s\""),
        "cap of the doubling",
    ),
    key(
        "restart_reset",
        Want::Duration,
        Some("\"10s\""),
        "a run at least this long resets the backoff and the budget",
    ),
    key(
        "restart_limit",
        Want::Int,
        Some("10"),
        "restarts in a row without a healthy run before the service is failed; 0 retries forever",
    ),
    key(
        "success_exit_codes",
        Want::IntList,
        Some("[0]"),
        "exit codes that count as success (the list replaces [0]): on-failure does not restart them, a oneshot or scheduled run with one succeeded",
    ),
    key(
        "stop_signal",
        Want::Signal,
        Some("\"SIGTERM\""),
        "sent to the service's process group on stop",
    ),
    key(
        "stop_timeout",
        Want::Duration,
        Some("\"5s\""),
        "then SIGKILL to the process group",
    ),
    key(
        "enabled",
        Want::Bool,
        Some("true"),
        "false: defined, not started at boot (svctl start runs it)",
    ),
    key(
        "type",
        Want::Choice(&["longrun", "oneshot"]),
        Some("\"longrun\""),
        "longrun: a daemon; oneshot: runs once to completion",
    ),
    key(
        "timeout",
        Want::Duration,
        None,
        "oneshots: still running after this, it is stopped and failed (default: no limit)",
    ),
    key(
        "optional",
        Want::Bool,
        Some("false"),
        "oneshots: a failure neither blocks what requires it nor stops the container",
    ),
    key(
        "ready",
        Want::Table(READY),
        None,
        "how the service shows it is ready: exactly one method (without it: ready once started)",
    ),
    key(
        "health",
        Want::Table(HEALTH),
        None,
        "a check of the ready service, as Docker's HEALTHCHECK",
    ),
    key(
        "log",
        Want::Table(LOG),
        None,
        "the service's log lines: console format, memory ring, rotated file",
    ),
    key(
        "no_new_privs",
        Want::Bool,
        Some("true"),
        "set PR_SET_NO_NEW_PRIVS: setuid programs and file capabilities give the service nothing",
    ),
    key(
        "schedule",
        Want::Table(SCHEDULE),
        None,
        "oneshots: run at these times instead of once at boot (a cron schedule without a cron daemon)",
    ),
    key(
        "prepare",
        Want::TableList(PREPARE),
        Some("[]"),
        "steps run before each start, as root: [[prepare]] tables with mkdir, chown, copy or render",
    ),
    key(
        "actions",
        Want::Map(ACTION),
        Some("{}"),
        "named operations for svctl action (validate, update, reload...): [actions.NAME] tables",
    ),
];

/// Every problem of shape in a parsed service file, or none.
pub fn check(source: &Source, doc: &DeTable<'_>) -> Vec<ConfigError> {
    check_keys(source, doc, SERVICE)
}

/// The same for another kind of file, with its own keys.
pub(super) fn check_keys(source: &Source, doc: &DeTable<'_>, keys: &[Key]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    table(source, "", doc, keys, &mut errors);
    // In the order of the file, not of the keys.
    errors.sort_by_key(|e| e.line);
    errors
}

fn table(
    source: &Source,
    prefix: &str,
    t: &DeTable<'_>,
    keys: &[Key],
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in t.iter() {
        let name = key.get_ref().as_ref();
        let line = Some(source.line_of(key.span().start));
        let shown = format!("{prefix}{name}");
        match keys
            .iter()
            .find(|k| k.name == name)
            .map(|k| (k.name, k.want))
        {
            None => {
                let hint = match nearest(name, keys) {
                    Some(k) => format!("did you mean `{prefix}{k}`?"),
                    None if prefix.is_empty() => {
                        "not a service file key (README lists them)".to_string()
                    }
                    None => format!(
                        "[{}] has {}",
                        prefix.trim_end_matches('.'),
                        keys.iter()
                            .map(|k| format!("`{}`", k.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                errors.push(source.error(line, format!("unknown key `{shown}`: {hint}")));
            }
            Some((_, Want::Table(inner))) => match value.get_ref() {
                DeValue::Table(sub) => table(source, &format!("{shown}."), sub, inner, errors),
                // A table of tables is written [name]; a nested one inline.
                other if prefix.is_empty() => errors.push(source.error(
                    line,
                    format!("`{shown}` must be a table ([{name}]), not {}", what(other)),
                )),
                other => errors.push(source.error(
                    line,
                    format!(
                        "`{shown}` must be a table ({{ {} }}), not {}",
                        inner
                            .iter()
                            .map(|k| format!("{} = ...", k.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        what(other)
                    ),
                )),
            },
            Some((_, Want::TableList(inner))) => match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::Table(t) => {
                                table(source, &format!("{name}."), t, inner, errors)
                            }
                            other => errors.push(source.error(
                                line,
                                format!(
                                    "`{shown}` must be tables ([[{name}]]), not {}",
                                    what(other)
                                ),
                            )),
                        }
                    }
                }
                other => errors.push(source.error(
                    line,
                    format!("`{shown}` must be tables ([[{name}]]), not {}", what(other)),
                )),
            },
            Some((_, Want::Map(inner))) => match value.get_ref() {
                DeValue::Table(sub) => {
                    for (entry, v) in sub.iter() {
                        let entry_name = entry.get_ref().as_ref();
                        let entry_line = Some(source.line_of(entry.span().start));
                        match v.get_ref() {
                            DeValue::Table(t) => {
                                table(source, &format!("{name}.{entry_name}."), t, inner, errors)
                            }
                            other => errors.push(source.error(
                                entry_line,
                                format!(
                                    "`{name}.{entry_name}` must be a table ([{name}.{entry_name}]), not {}",
                                    what(other)
                                ),
                            )),
                        }
                    }
                }
                other => errors.push(source.error(
                    line,
                    format!(
                        "`{shown}` must be tables ([{name}.NAME]), not {}",
                        what(other)
                    ),
                )),
            },
            Some((_, want)) => {
                if let Some(message) = mismatch(&shown, want, value) {
                    errors.push(source.error(line, message));
                }
            }
        }
    }
}

/// Why `value` is not what `key` wants, if it is not.
fn mismatch(key: &str, want: Want, value: &Spanned<DeValue<'_>>) -> Option<String> {
    let v = value.get_ref();
    let ok = match want {
        Want::Str | Want::Choice(_) => v.is_str(),
        Want::Int => v.is_integer(),
        Want::Bool => v.is_bool(),
        Want::StrList => v
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get_ref().is_str())),
        Want::IntList => v
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get_ref().is_integer())),
        Want::NameOrId | Want::Signal | Want::Size => v.is_str() || v.is_integer(),
        Want::GroupOrFlag => v.is_str() || v.is_integer() || v.is_bool(),
        Want::Duration => v.is_str() || v.is_integer() || v.is_float(),
        Want::Command => {
            v.is_str()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(|e| e.get_ref().is_str()))
        }
        Want::StrMap => v
            .as_table()
            .is_some_and(|t| t.values().all(|e| e.get_ref().is_str())),
        Want::Table(_) | Want::Map(_) => v.is_table(),
        Want::TableList(_) => v
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get_ref().is_table())),
    };
    if ok {
        return None;
    }
    let wanted = match want {
        Want::Str | Want::Choice(_) => "a string",
        Want::Int => "an integer",
        Want::Bool => "true or false",
        Want::StrList => "an array of strings",
        Want::IntList => "an array of integers, e.g. [0, 2]",
        Want::NameOrId => "a name or a number",
        Want::Duration => "a duration such as \"5s\" or a number of seconds",
        Want::Size => "a size such as \"10MiB\" or a number of bytes",
        Want::Signal => "a signal name such as \"SIGTERM\" or a number",
        Want::Command => "a command: a string for /bin/sh -c, or an array of strings",
        Want::StrMap => "a table of strings, e.g. { TZ = \"UTC\" }",
        Want::GroupOrFlag => "a group name or number, or true (signal the process group)",
        Want::Table(_) | Want::Map(_) => "a table",
        Want::TableList(_) => "tables ([[...]])",
    };
    let hint = match (key, v) {
        ("command", DeValue::String(_)) => {
            "; for a shell script write run = \"...\", for a program command = [\"/path\", \"arg\"]"
        }
        _ => "",
    };
    Some(format!("`{key}` must be {wanted}, not {}{hint}", what(v)))
}

/// A value as a person would name it: `the string "ten"`, `an integer`.
fn what(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => {
            let short: String = s.chars().take(40).collect();
            format!("the string {short:?}")
        }
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(_) => "a date".to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// The known key closest to `name`, if one is close enough to be a typo.
fn nearest(name: &str, keys: &[Key]) -> Option<&'static str> {
    keys.iter()
        .map(|k| (distance(name, k.name), k.name))
        .filter(|&(d, k)| d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance between two short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let next = (prev + cost).min(above + 1).min(left + 1);
            prev = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = next;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys here are exactly the raw structs' fields: they cannot
    /// drift apart.
    #[test]
    fn keys_match_the_raw_structs() {
        use super::super::{actions, logcfg, metadata, prepare, probes, raw, schedule};
        let names = |keys: &[Key]| -> Vec<&str> { keys.iter().map(|k| k.name).collect() };
        assert_eq!(raw::RawService::KEYS, names(SERVICE));
        assert_eq!(probes::RawReady::KEYS, names(READY));
        assert_eq!(probes::RawHealth::KEYS, names(HEALTH));
        assert_eq!(logcfg::RawLog::KEYS, names(LOG));
        assert_eq!(schedule::RawSchedule::KEYS, names(SCHEDULE));
        assert_eq!(actions::RawAction::KEYS, names(ACTION));
        assert_eq!(prepare::RawStep::KEYS, names(PREPARE));
        assert_eq!(prepare::FROM_TO_KEYS, names(FROM_TO));
        assert_eq!(metadata::META_KEYS, names(METADATA));
    }

    #[test]
    fn typos_find_their_key() {
        assert_eq!(nearest("reqiures", SERVICE), Some("requires"));
        assert_eq!(nearest("restart_dely", SERVICE), Some("restart_delay"));
        assert_eq!(nearest("banana", SERVICE), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
