//! `corral import crontab`: a crontab as scheduled oneshots, one service
//! file per entry. Pure: text in, files out (`mod.rs` reads and writes).
//!
//! What cron does and corral does not is said in each file: MAILTO (the
//! output goes to the container log instead), a second run while one
//! still runs (cron starts it; corral skips it, `overlap`).

use super::{Imported, toml_string};
use crate::config::schedule::parse_cron;

/// One entry as cron reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    line: usize,
    text: String,
    /// `None` for `@reboot`.
    schedule: Option<String>,
    user: Option<String>,
    command: String,
    /// What follows the first unescaped `%`, its `%`s made newlines.
    stdin: Option<String>,
    /// The environment lines above it, in order.
    env: Vec<(String, String)>,
    shell: Option<String>,
    cron_tz: Option<String>,
}

/// The nicknames cron knows besides `@reboot`.
const NICKNAMES: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Converts crontab `text` (read from `path`); `system`: /etc/crontab and
/// /etc/cron.d files, with a user column. Errors are `path:line: ...`.
pub fn import(path: &str, text: &str, system: bool) -> Result<Imported, Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut shell = None;
    let mut cron_tz = None;
    let mut mailto = None;
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = env_line(trimmed) {
            match name.as_str() {
                "SHELL" => shell = Some(value),
                "MAILTO" => mailto = Some(line),
                "CRON_TZ" => cron_tz = Some(value),
                _ => {
                    env.retain(|(k, _)| *k != name);
                    env.push((name, value));
                }
            }
            continue;
        }
        match entry(trimmed, system) {
            Ok((schedule, user, command)) => {
                let (command, stdin) = split_percent(&command);
                entries.push(Entry {
                    line,
                    text: trimmed.to_string(),
                    schedule,
                    user,
                    command,
                    stdin,
                    env: env.clone(),
                    shell: shell.clone(),
                    cron_tz: cron_tz.clone(),
                });
            }
            Err(why) => errors.push(format!("{path}:{line}: {why}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if entries.is_empty() {
        return Err(vec![format!(
            "{path}: no crontab entry in it (MINUTE HOUR DAY MONTH WEEKDAY{} COMMAND, or @daily and friends)",
            if system { " USER" } else { "" }
        )]);
    }
    let mut out = Imported::default();
    if let Some(line) = mailto {
        out.notes.push(format!(
            "{path}:{line}: MAILTO is not supported: corral sends each job's output to the container log"
        ));
    }
    for e in &entries {
        let name = unique_name(&out, &job_name(e));
        out.files.push((name, render(path, e, mailto.is_some())));
    }
    Ok(out)
}

/// `NAME=value` (cron allows spaces around `=`, and quotes around the
/// value); `None` for anything else.
fn env_line(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\''].into_iter().find_map(|q| {
        value
            .strip_prefix(q)
            .and_then(|v| v.strip_suffix(q))
            .filter(|_| value.len() >= 2)
    });
    Some((name.to_string(), unquoted.unwrap_or(value).to_string()))
}

/// The schedule (`None`: @reboot), user and command of an entry line.
type Parsed = (Option<String>, Option<String>, String);

fn entry(line: &str, system: bool) -> Result<Parsed, String> {
    let mut rest = line;
    let mut word = || {
        let t = rest.trim_start();
        let end = t.find([' ', '\t']).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        w.to_string()
    };
    let first = word();
    let schedule = if first == "@reboot" {
        None
    } else if NICKNAMES.contains(&first.as_str()) {
        Some(first)
    } else if first.starts_with('@') {
        return Err(format!(
            "unknown nickname {first}: cron knows @reboot, {}",
            NICKNAMES.join(", ")
        ));
    } else {
        let mut fields = vec![first];
        for _ in 0..4 {
            fields.push(word());
        }
        let expr = fields.join(" ");
        if fields.iter().any(String::is_empty) {
            return Err(format!(
                "not a crontab line: {line:?}: an entry is five time fields{} and a command",
                if system { ", a user" } else { "" }
            ));
        }
        parse_cron(&expr).map_err(|e| format!("`{expr}`: {e}"))?;
        Some(expr)
    };
    let user = if system {
        let u = word();
        if u.is_empty() {
            return Err("no user column: /etc/crontab and /etc/cron.d lines name the user before the command (or import without --system)".into());
        }
        Some(u)
    } else {
        None
    };
    let command = rest.trim().to_string();
    if command.is_empty() {
        return Err("no command after the schedule".into());
    }
    Ok((schedule, user, command))
}

/// Cron's `%`: the first unescaped one ends the command, the text after
/// it is the command's stdin with every further `%` a newline; `\%` is a
/// literal `%`.
fn split_percent(command: &str) -> (String, Option<String>) {
    let mut cmd = String::new();
    let mut stdin: Option<String> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = c == '\\' && chars.peek() == Some(&'%');
        if escaped {
            chars.next();
        }
        match (c, escaped, &mut stdin) {
            (_, true, Some(s)) => s.push('%'),
            (_, true, None) => cmd.push('%'),
            ('%', false, None) => stdin = Some(String::new()),
            ('%', false, Some(s)) => s.push('\n'),
            (c, false, Some(s)) => s.push(c),
            (c, false, None) => cmd.push(c),
        }
    }
    (cmd.trim_end().to_string(), stdin)
}

/// `cron-LINE-WORD`: the line it came from, and the command's program.
fn job_name(e: &Entry) -> String {
    let program = e
        .command
        .split_whitespace()
        .find(|w| !w.contains('='))
        .and_then(|w| w.rsplit('/').next())
        .unwrap_or("job");
    let word: String = program
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    if word.is_empty() {
        format!("cron-{}", e.line)
    } else {
        format!("cron-{}-{word}", e.line)
    }
}

fn unique_name(out: &Imported, name: &str) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while out.files.iter().any(|(f, _)| *f == candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

/// The service file of one entry.
fn render(path: &str, e: &Entry, mailto: bool) -> String {
    let mut t = format!(
        "# Imported from {path}:{} by corral import crontab:\n#   {}\n",
        e.line, e.text
    );
    if mailto {
        t.push_str("# MAILTO is not supported: the job's output goes to the container log.\n");
    }
    t.push_str("type = \"oneshot\"\n");
    let script = match &e.stdin {
        // cron feeds the text after % to the command's stdin.
        Some(input) => {
            let mut end = "CORRAL_CRON_INPUT".to_string();
            while input.lines().any(|l| l == end) {
                end.push('_');
            }
            format!("{} <<'{end}'\n{input}\n{end}", e.command)
        }
        None => e.command.clone(),
    };
    match &e.shell {
        Some(sh) if sh != "/bin/sh" => t.push_str(&format!(
            "command = [{}, \"-c\", {}]\n",
            toml_string(sh),
            toml_string(&script)
        )),
        _ => t.push_str(&format!("run = {}\n", toml_string(&script))),
    }
    if let Some(user) = &e.user {
        t.push_str(&format!("user = {}\n", toml_string(user)));
    }
    if e.schedule.is_none() {
        t.push_str(
            "# @reboot: run once when the container starts; its failure stops nothing.\noptional = true\n",
        );
    }
    if !e.env.is_empty() {
        t.push_str("\n[env]\n");
        for (k, v) in &e.env {
            t.push_str(&format!("{k} = {}\n", toml_string(v)));
        }
    }
    if let Some(when) = &e.schedule {
        t.push_str(&format!("\n[schedule]\ncron = {}\n", toml_string(when)));
        if let Some(tz) = &e.cron_tz {
            t.push_str(&format!("timezone = {}\n", toml_string(tz)));
        }
        t.push_str(
            "# cron would start another run while one still runs; corral skips it.\noverlap = \"skip\"\n",
        );
    }
    t
}

/// Whether `text` looks like a crontab: some line is a crontab entry and
/// none is TOML-like. For the error on a crontab saved as `x.toml`.
pub fn looks_like(text: &str) -> bool {
    let mut entries = 0;
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with('[') {
            return false;
        }
        if entry(l, false).is_ok() || entry(l, true).is_ok() {
            entries += 1;
        } else if env_line(l).is_none() {
            return false;
        }
    }
    entries > 0
}

#[cfg(test)]
mod tests;
