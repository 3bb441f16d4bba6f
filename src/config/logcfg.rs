//! Validation of a service's `[log]` table: output format, timestamps,
//! what to do when the container's output is full, the ring's size and an
//! optional log file with rotation.

use std::path::PathBuf;

use toml::Spanned;

use super::raw::{Value, from_table};

use super::checker::Checker;
use super::units::parse_size;
use crate::logs::{DEFAULT_KEEP, DEFAULT_MAX_SIZE, FileSpec, Format, LogSpec, OnFull};

/// `[log]` as written.
#[derive(Debug, Default)]
pub struct RawLog {
    pub format: Option<Spanned<String>>,
    pub timestamps: Option<bool>,
    pub on_full: Option<Spanned<String>>,
    pub ring_lines: Option<Spanned<i64>>,
    pub ring_size: Option<Spanned<Value>>,
    pub file: Option<Spanned<String>>,
    pub max_size: Option<Spanned<Value>>,
    pub keep: Option<Spanned<i64>>,
}

from_table!(RawLog {
    format,
    timestamps,
    on_full,
    ring_lines,
    ring_size,
    file,
    max_size,
    keep,
});

/// Validates `[log]`.
pub fn log(c: &mut Checker<'_>, table: &Spanned<RawLog>) -> LogSpec {
    let r = table.get_ref();
    let mut spec = LogSpec {
        timestamps: r.timestamps,
        ..LogSpec::default()
    };
    if let Some(f) = &r.format {
        match Format::parse(f.get_ref()) {
            Some(format) => spec.format = Some(format),
            None => c.error(
                f,
                format!(
                    "log.format = \"{}\": use \"prefix\", \"json\", \"raw\" or \"inherit\"",
                    f.get_ref()
                ),
            ),
        }
    }
    if let Some(o) = &r.on_full {
        match o.get_ref().as_str() {
            "block" => spec.on_full = OnFull::Block,
            "drop" => spec.on_full = OnFull::Drop,
            other => c.error(
                o,
                format!("log.on_full = \"{other}\": use \"block\" (never lose a line) or \"drop\""),
            ),
        }
    }
    if let Some(n) = &r.ring_lines {
        match usize::try_from(*n.get_ref()) {
            Ok(n) if n <= 1_000_000 => spec.ring_lines = n,
            _ => c.error(n, "log.ring_lines must be between 0 and 1000000"),
        }
    }
    if let Some(v) = &r.ring_size {
        match size(c, v, "log.ring_size") {
            Some(b) if b <= 64 << 20 => spec.ring_bytes = b as usize,
            Some(_) => c.error(v, "log.ring_size must be at most 64MiB"),
            None => {}
        }
    }
    let max_size = r.max_size.as_ref().and_then(|v| {
        let b = size(c, v, "log.max_size")?;
        if b < 4096 {
            c.error(v, "log.max_size must be at least 4KiB");
            return None;
        }
        Some(b)
    });
    let keep = r
        .keep
        .as_ref()
        .and_then(|k| match u32::try_from(*k.get_ref()) {
            Ok(n) if n <= 1000 => Some(n),
            _ => {
                c.error(k, "log.keep must be between 0 and 1000");
                None
            }
        });
    match &r.file {
        Some(f) => {
            let path = PathBuf::from(f.get_ref());
            if !path.is_absolute() || path.file_name().is_none() {
                c.error(
                    f,
                    format!(
                        "log.file `{}` must be an absolute path to a file",
                        path.display()
                    ),
                );
            }
            spec.file = Some(FileSpec {
                path,
                max_size: max_size.unwrap_or(DEFAULT_MAX_SIZE),
                keep: keep.unwrap_or(DEFAULT_KEEP),
            });
        }
        None => {
            for (key, given) in [
                ("max_size", r.max_size.is_some()),
                ("keep", r.keep.is_some()),
            ] {
                if given {
                    c.error(
                        table,
                        format!("log.{key} needs log.file: rotation applies to a log file"),
                    );
                }
            }
        }
    }
    if spec.format == Some(Format::Inherit) && spec.file.is_some() {
        c.error(table, "log.format = \"inherit\" gives corral no pipe to read, so it cannot write log.file: choose another format");
    }
    spec
}

fn size(c: &mut Checker<'_>, v: &Spanned<Value>, key: &str) -> Option<u64> {
    let parsed = match v.get_ref() {
        Value::String(s) => parse_size(s),
        Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("`{n}` is not a size")),
        other => Err(format!(
            "must be a size such as \"10MiB\", not a {}",
            other.type_str()
        )),
    };
    parsed.map_err(|e| c.error(v, format!("{key}: {e}"))).ok()
}
