//! What a service takes from outside its file. Environment files
//! (`env_file`, KEY=VALUE lines) and secret files (`env_from_file`, a
//! file's content as one variable) are validated here and parsed here, but
//! read by the runtime at each start, so a rotated secret applies on the
//! next restart. `enabled_env` and `user_env` name variables of corral's
//! own environment that switch a service on or off and give it the uid of
//! the host's volume owner; they are resolved once the files are loaded
//! (`resolve`), with their lines for the errors.
//!
//! No value read from a file or the environment ever goes into a message:
//! they are secrets.

use std::path::PathBuf;

use toml::Spanned;

use super::checker::Checker;
use super::{Config, ConfigError};

/// Largest environment or secret file read.
pub const MAX_FILE: u64 = 1024 * 1024;

/// One `env_file` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    pub path: PathBuf,
    /// Written with a leading `-`: a missing file is skipped.
    pub optional: bool,
}

/// A variable named in corral's environment, and the line naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromEnv {
    pub var: String,
    pub line: usize,
}

/// Validates `env_file`.
pub(super) fn env_files(c: &mut Checker<'_>, raw: &Spanned<Vec<String>>) -> Vec<EnvFile> {
    let mut out = Vec::new();
    for entry in raw.get_ref() {
        let (optional, path) = match entry.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, entry.as_str()),
        };
        if path.contains('\0') || !path.starts_with('/') {
            c.error(
                raw,
                format!(
                    "env_file `{}` must be an absolute path (a leading `-` makes it optional: \"-/run/app.env\")",
                    entry.escape_debug()
                ),
            );
            continue;
        }
        out.push(EnvFile {
            path: PathBuf::from(path),
            optional,
        });
    }
    out
}

/// Validates `env_from_file`.
pub(super) fn env_from_files(
    c: &mut Checker<'_>,
    raw: &Spanned<std::collections::BTreeMap<String, String>>,
) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (name, path) in raw.get_ref() {
        if let Err(why) = check_var_name(name) {
            c.error(raw, format!("env_from_file: {why}"));
        } else if path.contains('\0') || !path.starts_with('/') {
            c.error(
                raw,
                format!("env_from_file: the file of `{name}` must be an absolute path, e.g. \"/run/secrets/{}\"", name.to_ascii_lowercase()),
            );
        } else {
            out.push((name.clone(), PathBuf::from(path)));
        }
    }
    out
}

/// A variable name a shell would take: letters, digits and `_`, not
/// starting with a digit.
pub fn check_var_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a variable name: use letters, digits and `_`, not starting with a digit",
            name.escape_debug()
        ))
    }
}

/// Validates a key naming a variable (`enabled_env`, `user_env`).
pub(super) fn from_env(c: &mut Checker<'_>, key: &str, raw: &Spanned<String>) -> Option<FromEnv> {
    match check_var_name(raw.get_ref()) {
        Ok(()) => Some(FromEnv {
            var: raw.get_ref().clone(),
            line: c.source.line_of(raw.span().start),
        }),
        Err(why) => {
            c.error(raw, format!("{key}: {why}"));
            None
        }
    }
}

/// The variables of one environment file, in order. `Err` names the line
/// and what is wrong with it, never its text.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {n}: not KEY=VALUE"));
        };
        let name = name.trim_end();
        check_var_name(name).map_err(|why| format!("line {n}: {why}"))?;
        let value = value.trim_start();
        let value = match value.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .ok_or_else(|| {
                    format!("line {n}: the value of {name} opens a quote it does not close")
                })?
                .replace("\\\"", "\"")
                .replace("\\n", "\n")
                .replace("\\\\", "\\"),
            None => value.to_string(),
        };
        if value.contains('\0') {
            return Err(format!("line {n}: the value of {name} holds a NUL byte"));
        }
        vars.push((name.to_string(), value));
    }
    Ok(vars)
}

/// A secret file's content as a value: one trailing newline removed (the
/// way `echo secret > file` and Kubernetes write them).
pub fn secret_value(bytes: Vec<u8>) -> Result<String, &'static str> {
    let mut text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.contains('\0') {
        return Err("holds a NUL byte, which the environment cannot");
    }
    Ok(text)
}

/// Applies `enabled_env` and `user_env` from corral's environment `env`.
/// Every bad value is an error naming the variable and its service's line
/// (not the value, which may be anything).
pub fn resolve(
    config: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for s in &mut config.services {
        if let Some(e) = &s.enabled_env
            && let Some(value) = env(&e.var)
        {
            match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => s.enabled = true,
                "0" | "false" | "no" | "off" => s.enabled = false,
                _ => errors.push(s.source.error(
                    Some(e.line),
                    format!(
                        "{} (enabled_env of {}) must be 1, true, yes or on to enable it, 0, false, no or off to disable it",
                        e.var, s.name
                    ),
                )),
            }
        }
        if let Some(u) = &s.user_env
            && let Some(value) = env(&u.var)
        {
            match parse_ids(&value) {
                Some((uid, gid)) => {
                    if let Some(c) = &mut s.credentials {
                        let old = c.gid;
                        c.uid = Some(uid);
                        c.gid = gid;
                        // Its supplementary groups stay; the primary one
                        // is the new gid.
                        c.groups.retain(|&g| g != old && g != gid);
                        c.groups.insert(0, gid);
                        c.display = format!("{} ({uid}:{gid} from {})", c.display, u.var);
                    }
                }
                None => errors.push(s.source.error(
                    Some(u.line),
                    format!(
                        "{} (user_env of {}) must be a uid or uid:gid, e.g. 1001 or 1001:1001",
                        u.var, s.name
                    ),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `1001` (its gid the same) or `1001:100`. The kernel's "no change" id
/// (4294967295, read as -1) is refused.
fn parse_ids(value: &str) -> Option<(u32, u32)> {
    let id = |s: &str| -> Option<u32> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|&n| n != u32::MAX)
    };
    match value.split_once(':') {
        Some((u, g)) => Some((id(u)?, id(g)?)),
        None => {
            let n = id(value)?;
            Some((n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_comments_quotes_and_export() {
        let text = "# comment\n\nA=1\nexport B = two words\nC=\"quoted \\\"x\\\" and = sign\"\nD=\nE=\"line\\nbreak\"\n";
        assert_eq!(
            parse_env_file(text).unwrap(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "two words".to_string()),
                ("C".to_string(), "quoted \"x\" and = sign".to_string()),
                ("D".to_string(), String::new()),
                ("E".to_string(), "line\nbreak".to_string()),
            ]
        );
    }

    #[test]
    fn env_file_errors_name_the_line_not_the_secret() {
        for (text, want) in [
            ("A=1\nhunter2\n", "line 2: not KEY=VALUE"),
            ("1A=hunter2\n", "line 1: `1A` is not a variable name"),
            ("A=\"hunter2\n", "line 1: the value of A opens a quote"),
        ] {
            let err = parse_env_file(text).unwrap_err();
            assert!(err.starts_with(want), "{err}");
            assert!(!err.contains("hunter2"), "the value leaked: {err}");
        }
    }

    #[test]
    fn secrets_lose_one_trailing_newline() {
        assert_eq!(secret_value(b"s3cret\n".to_vec()).unwrap(), "s3cret");
        assert_eq!(secret_value(b"s3cret\r\n".to_vec()).unwrap(), "s3cret");
        assert_eq!(secret_value(b"two\n\n".to_vec()).unwrap(), "two\n");
        assert_eq!(secret_value(b"none".to_vec()).unwrap(), "none");
        assert!(secret_value(vec![0xff]).is_err());
    }

    #[test]
    fn ids_from_the_environment() {
        assert_eq!(parse_ids("1001"), Some((1001, 1001)));
        assert_eq!(parse_ids(" 1001:100 "), Some((1001, 100)));
        assert_eq!(parse_ids("0"), Some((0, 0)));
        for bad in ["", "-1", "1001:", "app", "4294967295", "1e3"] {
            assert_eq!(parse_ids(bad), None, "{bad}");
        }
    }
}
