//! The first look at a service file, before serde: every unknown key (with
//! the nearest known one) and every value of the wrong kind, each with its
//! line, in plain words. serde stops at the first problem and speaks of
//! `i64` and sequences; a file with two typos should show both.
//!
//! The keys listed here are the fields of `raw.rs`; a unit test holds the
//! two together.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigError, Source};

/// What a key's value may be.
#[derive(Debug, Clone, Copy)]
enum Want {
    Str,
    Int,
    Bool,
    StrList,
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
    Table(&'static [(&'static str, Want)]),
}

const READY: &[(&str, Want)] = &[
    ("notify", Want::Bool),
    ("fd", Want::Int),
    ("tcp", Want::Str),
    ("expect", Want::Str),
    ("http", Want::Str),
    ("exec", Want::Command),
    ("file", Want::Str),
    ("timeout", Want::Duration),
    ("interval", Want::Duration),
    ("check_timeout", Want::Duration),
];

const HEALTH: &[(&str, Want)] = &[
    ("tcp", Want::Str),
    ("expect", Want::Str),
    ("http", Want::Str),
    ("exec", Want::Command),
    ("interval", Want::Duration),
    ("timeout", Want::Duration),
    ("retries", Want::Int),
    ("start_period", Want::Duration),
    ("on_unhealthy", Want::Str),
];

const LOG: &[(&str, Want)] = &[
    ("format", Want::Str),
    ("timestamps", Want::Bool),
    ("on_full", Want::Str),
    ("ring_lines", Want::Int),
    ("ring_size", Want::Size),
    ("file", Want::Str),
    ("max_size", Want::Size),
    ("keep", Want::Int),
];

/// Every key of a service file.
const SERVICE: &[(&str, Want)] = &[
    ("command", Want::StrList),
    ("run", Want::Str),
    ("user", Want::NameOrId),
    ("group", Want::NameOrId),
    ("requires", Want::StrList),
    ("env", Want::StrMap),
    ("working_dir", Want::Str),
    ("pidfile", Want::Str),
    ("restart", Want::Str),
    ("restart_delay", Want::Duration),
    ("restart_delay_max", Want::Duration),
    ("restart_reset", Want::Duration),
    ("restart_limit", Want::Int),
    ("stop_signal", Want::Signal),
    ("stop_timeout", Want::Duration),
    ("enabled", Want::Bool),
    ("type", Want::Str),
    ("timeout", Want::Duration),
    ("optional", Want::Bool),
    ("ready", Want::Table(READY)),
    ("health", Want::Table(HEALTH)),
    ("log", Want::Table(LOG)),
    ("no_new_privs", Want::Bool),
];

/// Every problem of shape in `text` (already known to be valid TOML), or
/// none; `Err` is TOML that does not parse (serde reports that).
pub fn check(source: &Source, text: &str) -> Result<Vec<ConfigError>, ()> {
    let doc = DeTable::parse(text).map_err(|_| ())?;
    let mut errors = Vec::new();
    table(source, "", doc.get_ref(), SERVICE, &mut errors);
    // In the order of the file, not of the keys.
    errors.sort_by_key(|e| e.line);
    Ok(errors)
}

fn table(
    source: &Source,
    prefix: &str,
    t: &DeTable<'_>,
    keys: &[(&'static str, Want)],
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in t.iter() {
        let name = key.get_ref().as_ref();
        let line = Some(source.line_of(key.span().start));
        let shown = format!("{prefix}{name}");
        match keys.iter().find(|(k, _)| *k == name) {
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
                            .map(|(k, _)| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                errors.push(source.error(line, format!("unknown key `{shown}`: {hint}")));
            }
            Some((_, Want::Table(inner))) => match value.get_ref() {
                DeValue::Table(sub) => table(source, &format!("{name}."), sub, inner, errors),
                other => errors.push(source.error(
                    line,
                    format!("`{shown}` must be a table ([{name}]), not {}", what(other)),
                )),
            },
            Some((_, want)) => {
                if let Some(message) = mismatch(&shown, *want, value) {
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
        Want::Str => v.is_str(),
        Want::Int => v.is_integer(),
        Want::Bool => v.is_bool(),
        Want::StrList => v
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get_ref().is_str())),
        Want::NameOrId | Want::Signal | Want::Size => v.is_str() || v.is_integer(),
        Want::Duration => v.is_str() || v.is_integer() || v.is_float(),
        Want::Command => {
            v.is_str()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(|e| e.get_ref().is_str()))
        }
        Want::StrMap => v
            .as_table()
            .is_some_and(|t| t.values().all(|e| e.get_ref().is_str())),
        Want::Table(_) => v.is_table(),
    };
    if ok {
        return None;
    }
    let wanted = match want {
        Want::Str => "a string",
        Want::Int => "an integer",
        Want::Bool => "true or false",
        Want::StrList => "an array of strings",
        Want::NameOrId => "a name or a number",
        Want::Duration => "a duration such as \"5s\" or a number of seconds",
        Want::Size => "a size such as \"10MiB\" or a number of bytes",
        Want::Signal => "a signal name such as \"SIGTERM\" or a number",
        Want::Command => "a command: a string for /bin/sh -c, or an array of strings",
        Want::StrMap => "a table of strings, e.g. { TZ = \"UTC\" }",
        Want::Table(_) => "a table",
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
fn nearest(name: &str, keys: &[(&'static str, Want)]) -> Option<&'static str> {
    keys.iter()
        .map(|(k, _)| (distance(name, k), *k))
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

    /// The keys here are exactly serde's (which lists them in its error
    /// for an unknown field): they cannot drift apart.
    #[test]
    fn keys_match_the_raw_structs() {
        let fields = |text: &str| -> Vec<String> {
            let e = super::super::raw::parse(text)
                .unwrap_err()
                .message()
                .to_string();
            e.split('`').skip(3).step_by(2).map(String::from).collect()
        };
        let names = |keys: &[(&str, Want)]| -> Vec<String> {
            keys.iter().map(|(k, _)| k.to_string()).collect()
        };
        assert_eq!(fields("bogus = 1\n"), names(SERVICE));
        assert_eq!(fields("run = \"x\"\n[ready]\nbogus = 1\n"), names(READY));
        assert_eq!(fields("run = \"x\"\n[health]\nbogus = 1\n"), names(HEALTH));
        assert_eq!(fields("run = \"x\"\n[log]\nbogus = 1\n"), names(LOG));
    }

    #[test]
    fn typos_find_their_key() {
        assert_eq!(nearest("reqiures", SERVICE), Some("requires"));
        assert_eq!(nearest("restart_dely", SERVICE), Some("restart_delay"));
        assert_eq!(nearest("banana", SERVICE), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
