//! The second configuration stage: a validated, fully resolved service.
//!
//! Everything a child needs is computed here, at load time, in the parent:
//! argv, environment, uid/gid/groups, signals and durations. The spawner then
//! only copies values between fork and exec (see `runtime::spawn`).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::raw::Value;

use super::actions::{self, ActionSpec};
use super::checker::Checker;
use super::environ::{self, EnvFile, FromEnv};
use super::logcfg;
use super::probes::{self, HealthSpec, Kind, ReadySpec};
use super::raw::RawService;
use super::schedule::{self, ScheduleSpec};
use super::units::parse_signal;
use super::users::UserDb;
use super::{ConfigError, Source};
use crate::logs::LogSpec;

/// What happens when a service's process exits without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Restart pacing: exponential backoff and the crash-loop budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart; doubled for each quick failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// A run at least this long counts as healthy and resets the backoff.
    pub reset_after: Duration,
    /// Quick failures in a row after which the service is `failed`;
    /// `None` means retry forever.
    pub limit: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
            limit: Some(10),
        }
    }
}

/// The identity a service runs as, resolved from the user databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `None` keeps corral's own uid (only `group` was given).
    pub uid: Option<u32>,
    pub gid: u32,
    /// Supplementary groups, passed to setgroups(2).
    pub groups: Vec<u32>,
    /// The user's name, when /etc/passwd knows it (for USER and LOGNAME).
    pub user_name: Option<String>,
    /// HOME for the service; `None` leaves corral's own.
    pub home: Option<String>,
    /// How the user wrote it, for status output.
    pub display: String,
    /// The line of `user` (or of `group`, when alone), for errors found later.
    pub line: usize,
}

/// A validated service definition.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub source: Source,
    /// Program and arguments; a `run` script becomes `/bin/sh -c SCRIPT`.
    pub argv: Vec<String>,
    pub credentials: Option<Credentials>,
    /// Variables set on top of corral's own environment.
    pub env: Vec<(String, String)>,
    /// Variables of corral's environment the service does not get (a
    /// runit envdir's empty files).
    pub env_unset: Vec<String>,
    /// Files of variables, read at each start (below `env_from_file`).
    pub env_files: Vec<EnvFile>,
    /// Variables holding a file's content, read at each start (below
    /// `env`).
    pub env_from_files: Vec<(String, PathBuf)>,
    /// A variable of corral's environment that overrides `enabled`.
    pub enabled_env: Option<FromEnv>,
    /// A variable of corral's environment with the uid (and gid) to use
    /// instead of `user`'s.
    pub user_env: Option<FromEnv>,
    pub working_dir: Option<PathBuf>,
    /// The command daemonizes: after it exits 0, supervise the process
    /// whose pid this file holds.
    pub pidfile: Option<PathBuf>,
    /// Required service names with the line that names each.
    pub requires: Vec<(String, usize)>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// Exit codes that count as success (`[0]` unless the file says).
    pub success_exit_codes: Vec<i32>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub enabled: bool,
    pub kind: Kind,
    pub ready: Option<ReadySpec>,
    pub health: Option<HealthSpec>,
    pub log: LogSpec,
    /// PR_SET_NO_NEW_PRIVS before exec (prctl(2)): setuid programs and
    /// file capabilities give the service nothing it did not have.
    pub no_new_privs: bool,
    /// A oneshot run at these times, not at boot.
    pub schedule: Option<ScheduleSpec>,
    /// What `svctl action` can do with it, by name.
    pub actions: Vec<ActionSpec>,
    /// Set-up steps run before each start.
    pub prepare: Vec<super::prepare::Step>,
    /// Made from a runit service directory: what was found there.
    pub runit: Option<Box<super::runit::RunitDir>>,
    /// One end of the pipe between a runit service and its `log/run`.
    pub log_pipe: Option<LogPipe>,
}

/// The pipe from a runit service's stdout to its logger's stdin, named by
/// the service. corral holds both ends open across restarts of either
/// side, so no line is lost while one of them restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPipe {
    /// This service's stdout goes into the pipe of (its own) name.
    Writer(String),
    /// This logger's stdin comes from the pipe of that service.
    Reader(String),
}

impl ServiceSpec {
    pub fn is_oneshot(&self) -> bool {
        matches!(self.kind, Kind::Oneshot { .. })
    }

    /// Whether exit code `code` counts as success (`success_exit_codes`;
    /// a death by signal never does).
    pub fn success_code(&self, code: i32) -> bool {
        self.success_exit_codes.contains(&code)
    }

    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// What to say to `svctl action` naming an action it does not have.
    pub fn no_such_action(&self, name: &str) -> String {
        let known: Vec<&str> = self.actions.iter().map(|a| a.name.as_str()).collect();
        let known = if known.is_empty() {
            "it has none".to_string()
        } else {
            format!("its actions: {}", known.join(", "))
        };
        format!("{} has no action `{name}` ({known})", self.name)
    }
}

/// Most `env` entries a service may have; real ones have a few dozen.
pub const MAX_ENV_ENTRIES: usize = 4096;

/// Most bytes of `env` (names and values); exec(2) takes at most 2 MiB of
/// arguments and environment together, and corral's own comes on top.
pub const MAX_ENV_BYTES: usize = 1024 * 1024;

/// Longest single `NAME=value` exec(2) accepts (MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: usize = 128 * 1024;

/// Default time between stop_signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Validates one parsed file. Returns every problem found, not just the first.
pub fn validate(
    name: &str,
    source: &Source,
    raw: RawService,
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    let mut c = Checker::new(source);

    let argv = match (&raw.command, &raw.run) {
        (Some(cmd), None) => {
            let argv = cmd.get_ref().clone();
            match argv.first() {
                None => c.error(cmd, "command is empty: give at least the program, e.g. [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]"),
                Some(p) if p.is_empty() => c.error(cmd, "command: the program name is empty"),
                Some(_) => {}
            }
            if argv.iter().any(|a| a.contains('\0')) {
                c.error(
                    cmd,
                    "command contains a NUL byte, which no program can be given: remove it",
                );
            }
            argv
        }
        (None, Some(run)) => {
            if run.get_ref().contains('\0') {
                c.error(
                    run,
                    "run contains a NUL byte, which no shell can be given: remove it",
                );
            }
            if run.get_ref().trim().is_empty() {
                c.error(
                    run,
                    "run is empty: give a shell script, e.g. run = \"exec nginx -g 'daemon off;'\"",
                );
            }
            vec!["/bin/sh".into(), "-c".into(), run.get_ref().clone()]
        }
        (Some(cmd), Some(_)) => {
            c.error(cmd, "both `command` and `run` are set: keep exactly one");
            Vec::new()
        }
        (None, None) => {
            c.errors.push(source.error(
                Some(1),
                "no `command` or `run`: add command = [\"/path/to/daemon\", \"--foreground\"] or run = \"exec daemon\"",
            ));
            Vec::new()
        }
    };

    let credentials = resolve_credentials(&mut c, raw.user.as_ref(), raw.group.as_ref(), users);

    let restart = match raw.restart.as_ref().map(|r| (r, r.get_ref().as_str())) {
        None | Some((_, "always")) => RestartPolicy::Always,
        Some((_, "on-failure")) => RestartPolicy::OnFailure,
        Some((_, "never")) => RestartPolicy::Never,
        Some((r, other)) => {
            c.error(r, format!("restart = \"{other}\" is not a policy: use \"always\", \"on-failure\" or \"never\""));
            RestartPolicy::Always
        }
    };

    let defaults = Backoff::default();
    let mut backoff = Backoff {
        initial: c.duration(&raw.restart_delay, "restart_delay", defaults.initial),
        max: c.duration(&raw.restart_delay_max, "restart_delay_max", defaults.max),
        reset_after: c.duration(&raw.restart_reset, "restart_reset", defaults.reset_after),
        limit: defaults.limit,
    };
    if let Some(limit) = &raw.restart_limit {
        match u32::try_from(*limit.get_ref()) {
            Ok(0) => backoff.limit = None,
            Ok(n) if n <= 1_000_000 => backoff.limit = Some(n),
            _ => c.error(
                limit,
                "restart_limit must be between 0 (no limit) and 1000000",
            ),
        }
    }
    if backoff.max < backoff.initial {
        backoff.max = backoff.initial;
    }
    let success_exit_codes = match &raw.success_exit_codes {
        None => vec![0],
        Some(list) if list.get_ref().is_empty() => {
            c.error(
                list,
                "success_exit_codes is empty: nothing would count as success; leave it out for [0]",
            );
            vec![0]
        }
        Some(list) => {
            let mut codes = Vec::new();
            for &code in list.get_ref() {
                match i32::try_from(code) {
                    Ok(n @ 0..=255) if !codes.contains(&n) => codes.push(n),
                    Ok(0..=255) => {}
                    _ => c.error(
                        list,
                        format!("success_exit_codes: {code} is not an exit code: they are 0 to 255 (a death by signal never counts as success)"),
                    ),
                }
            }
            codes
        }
    };

    let stop_signal = match &raw.stop_signal {
        None => Signal::SIGTERM,
        Some(v) => {
            let parsed = match v.get_ref() {
                Value::String(s) => parse_signal(s),
                Value::Integer(n) => parse_signal(&n.to_string()),
                other => Err(format!(
                    "must be a signal name such as \"SIGTERM\", not a {}",
                    other.type_str()
                )),
            };
            parsed.unwrap_or_else(|e| {
                c.error(v, format!("stop_signal: {e}"));
                Signal::SIGTERM
            })
        }
    };
    let stop_timeout = c.duration(&raw.stop_timeout, "stop_timeout", DEFAULT_STOP_TIMEOUT);

    let mut env = Vec::new();
    if let Some(map) = &raw.env {
        let mut total = 0;
        for (k, v) in map.get_ref() {
            total += k.len() + v.len() + 2;
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                c.error(
                    map,
                    format!(
                        "env: `{}` is not a valid variable name (no `=`, no NUL byte, not empty)",
                        k.escape_debug()
                    ),
                );
            } else if v.contains('\0') {
                c.error(
                    map,
                    format!("env: the value of `{k}` contains a NUL byte, which the environment cannot hold"),
                );
            } else if k.len() + v.len() + 2 > MAX_ARG_STRLEN {
                c.error(
                    map,
                    format!("env: `{k}` is longer than 128 KiB, more than exec(2) accepts for one variable"),
                );
            } else {
                env.push((k.clone(), v.clone()));
            }
        }
        if map.get_ref().len() > MAX_ENV_ENTRIES || total > MAX_ENV_BYTES {
            c.error(
                map,
                format!(
                    "env has {} entries, {total} bytes: at most {MAX_ENV_ENTRIES} entries and 1 MiB; put bulk data in a file",
                    map.get_ref().len()
                ),
            );
        }
    }

    let env_files = raw
        .env_file
        .as_ref()
        .map(|f| environ::env_files(&mut c, f))
        .unwrap_or_default();
    let env_from_files = raw
        .env_from_file
        .as_ref()
        .map(|f| environ::env_from_files(&mut c, f))
        .unwrap_or_default();
    let enabled_env = raw
        .enabled_env
        .as_ref()
        .and_then(|e| environ::from_env(&mut c, "enabled_env", e));
    let user_env = raw
        .user_env
        .as_ref()
        .and_then(|e| environ::from_env(&mut c, "user_env", e));
    if let (Some(u), None) = (&raw.user_env, &raw.user) {
        c.error(
            u,
            "user_env replaces the ids of `user`: set user too (who the service runs as when the variable is not set)",
        );
    }

    let pidfile = raw.pidfile.as_ref().map(|f| {
        let p = PathBuf::from(f.get_ref());
        if f.get_ref().contains('\0') {
            c.error(
                f,
                "pidfile contains a NUL byte, which no path can hold: remove it",
            );
        } else if !p.is_absolute() {
            c.error(
                f,
                format!("pidfile `{}` must be an absolute path", p.display()),
            );
        }
        p
    });
    let working_dir = raw.working_dir.as_ref().map(|d| {
        let p = PathBuf::from(d.get_ref());
        if d.get_ref().contains('\0') {
            c.error(
                d,
                "working_dir contains a NUL byte, which no path can hold: remove it",
            );
        } else if !p.is_absolute() {
            c.error(
                d,
                format!("working_dir `{}` must be an absolute path", p.display()),
            );
        }
        p
    });

    let requires = raw
        .requires
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let line = source.line_of(r.span().start);
            (r.into_inner(), line)
        })
        .collect();

    let kind = probes::kind(
        &mut c,
        raw.kind.as_ref(),
        &raw.timeout,
        raw.optional.as_ref(),
    );
    let ready = raw
        .ready
        .as_ref()
        .and_then(|r| probes::ready(&mut c, r, warnings));
    let health = raw.health.as_ref().and_then(|h| probes::health(&mut c, h));
    let log = raw
        .log
        .as_ref()
        .map(|l| logcfg::log(&mut c, l))
        .unwrap_or_default();
    if let Kind::Oneshot { .. } = kind {
        let oneshot_error = "does not apply to a oneshot, which runs once to completion: remove it";
        if let Some(r) = &raw.restart {
            c.error(r, format!("restart {oneshot_error}"));
        }
        if let Some(p) = &raw.pidfile {
            c.error(p, format!("pidfile {oneshot_error}"));
        }
        if let Some(r) = &raw.ready {
            c.error(
                r,
                format!("[ready] {oneshot_error} (a oneshot is done when it exits 0)"),
            );
        }
        if let Some(h) = &raw.health {
            c.error(h, format!("[health] {oneshot_error}"));
        }
    }

    let schedule = raw.schedule.as_ref().and_then(|t| {
        let spec = schedule::schedule(&mut c, t, jiff::Timestamp::now());
        if kind == Kind::Longrun {
            c.error(
                t,
                "[schedule] applies to oneshots: add type = \"oneshot\" (a daemon runs all the time)",
            );
        }
        spec
    });
    if schedule.is_some()
        && let Some(o) = &raw.optional
    {
        c.error(
            o,
            "optional does not apply to a scheduled oneshot: its failures never stop the container or block anything",
        );
    }

    let prepare = raw
        .prepare
        .as_deref()
        .map(|steps| super::prepare::steps(&mut c, steps, users, warnings))
        .unwrap_or_default();

    let actions = raw
        .actions
        .as_ref()
        .map(|t| {
            actions::actions(
                &mut c,
                name,
                t,
                (raw.user.as_ref(), raw.group.as_ref()),
                users,
            )
        })
        .unwrap_or_default();

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(ServiceSpec {
        name: name.to_string(),
        source: source.clone(),
        argv,
        credentials,
        env,
        env_unset: Vec::new(),
        env_files,
        env_from_files,
        enabled_env,
        user_env,
        working_dir,
        pidfile,
        requires,
        restart,
        backoff,
        success_exit_codes,
        stop_signal,
        stop_timeout,
        enabled: raw.enabled.unwrap_or(true),
        kind,
        ready,
        health,
        log,
        no_new_privs: raw.no_new_privs.unwrap_or(true),
        schedule,
        actions,
        prepare,
        runit: None,
        log_pipe: None,
    })
}

/// A user or group reference: a name, or a number given as an integer or as
/// a string of digits.
enum IdRef<'a> {
    Name(&'a str),
    Id(u32),
}

fn id_ref<'a>(c: &mut Checker<'_>, v: &'a Spanned<Value>, key: &str) -> Option<IdRef<'a>> {
    let id = id_value(c, v, key)?;
    if let IdRef::Id(u32::MAX) = id {
        // setuid(2) and setgid(2) read (uid_t)-1 as "leave unchanged".
        c.error(
            v,
            format!("{key} id 4294967295 is reserved: the kernel reads it as -1, \"no change\"; use another id"),
        );
        return None;
    }
    Some(id)
}

fn id_value<'a>(c: &mut Checker<'_>, v: &'a Spanned<Value>, key: &str) -> Option<IdRef<'a>> {
    match v.get_ref() {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            match s.parse() {
                Ok(n) => Some(IdRef::Id(n)),
                Err(_) => {
                    c.error(v, format!("{key} id `{s}` is out of range"));
                    None
                }
            }
        }
        Value::String(s) if !s.is_empty() => Some(IdRef::Name(s)),
        Value::Integer(n) => match u32::try_from(*n) {
            Ok(n) => Some(IdRef::Id(n)),
            Err(_) => {
                c.error(v, format!("{key} id {n} is out of range"));
                None
            }
        },
        _ => {
            c.error(v, format!("{key} must be a name or a number"));
            None
        }
    }
}

pub(super) fn resolve_credentials(
    c: &mut Checker<'_>,
    user: Option<&Spanned<Value>>,
    group: Option<&Spanned<Value>>,
    db: &UserDb,
) -> Option<Credentials> {
    let gid_override = group.and_then(|g| match id_ref(c, g, "group")? {
        IdRef::Id(gid) => Some(gid),
        IdRef::Name(name) => match db.group_by_name(name) {
            Some(g) => Some(g.gid),
            None => {
                c.error(g, format!("unknown group `{name}`: it is not in /etc/group (add it, or give a numeric gid)"));
                None
            }
        },
    });

    let Some(user) = user else {
        let gid = gid_override?;
        return Some(Credentials {
            uid: None,
            gid,
            groups: vec![gid],
            user_name: None,
            home: None,
            display: format!(":{gid}"),
            line: group.map_or(1, |g| c.source.line_of(g.span().start)),
        });
    };
    let line = c.source.line_of(user.span().start);

    let entry = match id_ref(c, user, "user")? {
        IdRef::Name(name) => match db.user_by_name(name) {
            Some(e) => Ok(e.clone()),
            None => {
                c.error(user, format!("unknown user `{name}`: it is not in /etc/passwd (add it, e.g. with useradd, or give a numeric uid)"));
                return None;
            }
        },
        IdRef::Id(uid) => db.user_by_uid(uid).cloned().ok_or(uid),
    };
    Some(match entry {
        Ok(pw) => {
            let gid = gid_override.unwrap_or(pw.gid);
            let mut groups = db.groups_of(&pw.name, pw.gid);
            if !groups.contains(&gid) {
                groups.insert(0, gid);
            }
            Credentials {
                uid: Some(pw.uid),
                gid,
                groups,
                display: pw.name.clone(),
                user_name: Some(pw.name),
                home: Some(pw.home),
                line,
            }
        }
        // A uid without a passwd entry (the OpenShift case): its own number
        // as gid rather than root's group 0, and no supplementary groups.
        Err(uid) => {
            let gid = gid_override.unwrap_or(uid);
            Credentials {
                uid: Some(uid),
                gid,
                groups: vec![gid],
                user_name: None,
                home: Some("/".into()),
                display: uid.to_string(),
                line,
            }
        }
    })
}
