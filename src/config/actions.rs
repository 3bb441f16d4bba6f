//! `[actions.NAME]`: the named operations a service offers (validate its
//! config, update its data, reload, back up), run by `svctl action`. An
//! action either runs a command the way the service runs (its environment,
//! working directory and privilege drop, or a user of its own) or sends a
//! signal to the service's main process. Validated here, at load time,
//! like every other key.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::raw::{Value, from_table};

use super::checker::Checker;
use super::model::{Credentials, resolve_credentials};
use super::units::parse_signal;
use super::users::UserDb;

/// Time an action may run before its process group gets SIGTERM.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest action name; it appears in log prefixes (`web/validate`).
const MAX_NAME: usize = 64;

/// One `[actions.NAME]` table, as written.
#[derive(Debug, Default)]
pub struct RawAction {
    pub command: Option<Spanned<Vec<String>>>,
    pub run: Option<Spanned<String>>,
    pub signal: Option<Spanned<Value>>,
    pub user: Option<Spanned<Value>>,
    /// A group (name or number) for a command, or `true` for a signal
    /// sent to the service's whole process group.
    pub group: Option<Spanned<Value>>,
    pub timeout: Option<Spanned<Value>>,
    pub description: Option<Spanned<String>>,
    pub when: Option<Spanned<String>>,
}

from_table!(RawAction {
    command,
    run,
    signal,
    user,
    group,
    timeout,
    description,
    when,
});

/// The `[actions]` table: action names to their tables.
pub type RawActions = BTreeMap<String, Spanned<RawAction>>;

/// A validated action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    pub name: String,
    /// Shown by `svctl actions`.
    pub description: Option<String>,
    pub does: Does,
    /// Then SIGTERM to the action's process group, then SIGKILL.
    pub timeout: Duration,
    pub when: When,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum Does {
    /// Runs this program; the caller's arguments are appended. A `run`
    /// script is `/bin/sh -c SCRIPT SERVICE/ACTION`, so the arguments are
    /// its `$1`, `$2`, ...
    Command {
        argv: Vec<String>,
        /// Its own user or group; `None` runs as the service does.
        credentials: Option<Credentials>,
    },
    /// Sends this signal to the service's main process (`group`: to its
    /// process group).
    Signal { signal: Signal, group: bool },
}

/// When an action may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only while the service has a running process.
    Running,
    /// Whatever the service's state.
    Any,
}

impl When {
    pub fn word(self) -> &'static str {
        match self {
            When::Running => "running",
            When::Any => "any",
        }
    }
}

impl ActionSpec {
    /// The program and arguments of one run with the caller's `args`.
    pub fn argv(&self, args: &[String]) -> Option<Vec<String>> {
        match &self.does {
            Does::Command { argv, .. } => {
                let mut all = argv.clone();
                all.extend(args.iter().cloned());
                Some(all)
            }
            Does::Signal { .. } => None,
        }
    }

    /// `command`, `run` or `signal`, for listings.
    pub fn kind_word(&self) -> &'static str {
        match self.does {
            Does::Command { .. } => "command",
            Does::Signal { .. } => "signal",
        }
    }
}

/// Action names are log prefixes and command-line words: keep them plain.
pub fn check_action_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok) {
        return Err(format!(
            "`{}` is not a valid action name: use 1 to {MAX_NAME} letters, digits, `-` or `_`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Validates every `[actions.NAME]` of service `service`, whose own
/// `user` and `group` are the defaults of a command's.
pub(super) fn actions(
    c: &mut Checker<'_>,
    service: &str,
    table: &Spanned<RawActions>,
    service_ids: (Option<&Spanned<Value>>, Option<&Spanned<Value>>),
    users: &UserDb,
) -> Vec<ActionSpec> {
    let mut out = Vec::new();
    for (name, raw) in table.get_ref() {
        if let Err(why) = check_action_name(name) {
            c.error(raw, format!("[actions] {why}"));
            continue;
        }
        if let Some(a) = action(c, service, name, raw, service_ids, users) {
            out.push(a);
        }
    }
    out
}

fn action(
    c: &mut Checker<'_>,
    service: &str,
    name: &str,
    spanned: &Spanned<RawAction>,
    (service_user, service_group): (Option<&Spanned<Value>>, Option<&Spanned<Value>>),
    users: &UserDb,
) -> Option<ActionSpec> {
    let raw = spanned.get_ref();
    let at = format!("[actions.{name}]");
    let key = |k: &str| format!("actions.{name}.{k}");
    let errors_before = c.errors.len();
    let flag = raw.group.as_ref().and_then(|g| match g.get_ref() {
        Value::Boolean(b) => Some((g, *b)),
        _ => None,
    });
    let named_group = raw
        .group
        .as_ref()
        .filter(|g| !matches!(g.get_ref(), Value::Boolean(_)));
    let does = match (&raw.command, &raw.run, &raw.signal) {
        (Some(cmd), None, None) => {
            let argv = cmd.get_ref().clone();
            match argv.first() {
                None => c.error(cmd, format!("{} is empty: give at least the program, e.g. [\"/usr/sbin/nginx\", \"-t\"]", key("command"))),
                Some(p) if p.is_empty() => c.error(cmd, format!("{}: the program name is empty", key("command"))),
                Some(_) => {}
            }
            if argv.iter().any(|a| a.contains('\0')) {
                c.error(
                    cmd,
                    format!("{} contains a NUL byte: remove it", key("command")),
                );
            }
            Some(argv)
        }
        (None, Some(run), None) => {
            let script = run.get_ref();
            if script.contains('\0') {
                c.error(
                    run,
                    format!("{} contains a NUL byte: remove it", key("run")),
                );
            }
            if script.trim().is_empty() {
                c.error(
                    run,
                    format!(
                        "{} is empty: give a shell script, e.g. run = \"nginx -t\"",
                        key("run")
                    ),
                );
            }
            // $0 names the action; the caller's arguments are $1, $2, ...
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                script.clone(),
                format!("{service}/{name}"),
            ])
        }
        (None, None, Some(_)) => None,
        (None, None, None) => {
            c.error(
                spanned,
                format!(
                    "{at} does nothing: give command = [...], run = \"...\" or signal = \"SIGHUP\""
                ),
            );
            return None;
        }
        _ => {
            c.error(
                spanned,
                format!("{at} has more than one of command, run and signal: keep exactly one"),
            );
            return None;
        }
    };
    let when = match raw.when.as_ref().map(|w| (w, w.get_ref().as_str())) {
        None | Some((_, "running")) => When::Running,
        Some((_, "any")) => When::Any,
        Some((w, other)) => {
            c.error(
                w,
                format!(
                    "{} = \"{other}\": use \"running\" (the default) or \"any\"",
                    key("when")
                ),
            );
            When::Running
        }
    };
    let timeout = c.duration(&raw.timeout, &key("timeout"), DEFAULT_TIMEOUT);
    if let Some(t) = &raw.timeout
        && timeout.is_zero()
    {
        c.error(t, format!("{} must be more than 0s", key("timeout")));
    }
    let description = raw.description.as_ref().map(|d| d.get_ref().clone());
    let does = match does {
        Some(argv) => {
            if let Some((g, _)) = flag {
                c.error(
                    g,
                    format!(
                        "{} = true sends a signal to the process group and goes with signal; to run the command as a group, name it: group = \"adm\"",
                        key("group")
                    ),
                );
            }
            // The action's own user (with its own primary group), or the
            // service's user with the action's group, or as the service.
            let credentials = match (&raw.user, named_group) {
                (None, None) => None,
                (Some(user), group) => resolve_credentials(c, Some(user), group, users),
                (None, Some(group)) => {
                    resolve_credentials(c, service_user, Some(group).or(service_group), users)
                }
            };
            Does::Command { argv, credentials }
        }
        None => {
            let signal = raw.signal.as_ref().map(|v| {
                let parsed = match v.get_ref() {
                    Value::String(s) => parse_signal(s),
                    Value::Integer(n) => parse_signal(&n.to_string()),
                    other => Err(format!(
                        "must be a signal name such as \"SIGHUP\", not a {}",
                        other.type_str()
                    )),
                };
                parsed.unwrap_or_else(|e| {
                    c.error(v, format!("{}: {e}", key("signal")));
                    Signal::SIGHUP
                })
            });
            for (k, given) in [
                ("user", raw.user.as_ref().map(|u| u.span())),
                ("group", named_group.map(|g| g.span())),
                ("timeout", raw.timeout.as_ref().map(|t| t.span())),
            ] {
                if let Some(span) = given {
                    let line = c.source.line_of(span.start);
                    c.errors.push(c.source.error(
                        Some(line),
                        format!(
                            "{} does not apply to a signal action, which runs no process: remove it",
                            key(k)
                        ),
                    ));
                }
            }
            if let (When::Any, Some(w)) = (when, &raw.when) {
                c.error(
                    w,
                    format!(
                        "{} = \"any\" does not apply to a signal action: a signal needs the service's process; remove it",
                        key("when")
                    ),
                );
            }
            Does::Signal {
                signal: signal.unwrap_or(Signal::SIGHUP),
                group: flag.is_some_and(|(_, b)| b),
            }
        }
    };
    (c.errors.len() == errors_before).then(|| ActionSpec {
        name: name.to_string(),
        description,
        does,
        timeout,
        when,
    })
}
