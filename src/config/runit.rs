//! runit service directories in the services directory, taken as they
//! are: `NAME/run` is the service `NAME`. What runsv would do with the
//! rest of the directory becomes the service's settings: `down` (not
//! started at boot), `env/` (an envdir, chpst -e rules), `check` (the
//! readiness check, as `sv check` runs it), the one-second pause between
//! restarts; a `NAME/corral.toml` adds corral keys on top.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::raw::RawService;
use super::{ConfigError, Source};

/// Largest envdir file read; only its first line is used.
const MAX_ENV_FILE: u64 = 64 * 1024;

/// Files of an envdir read at most; more is surely not an envdir.
const MAX_ENV_FILES: usize = 4096;

/// What corral found in a runit directory, for `corral check` and for
/// the settings it implies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunitDir {
    pub dir: PathBuf,
    /// A `down` file: not started at boot.
    pub down: bool,
    /// An executable `check`.
    pub check: bool,
    /// An executable `finish`: run after each exit of `run`.
    pub finish: bool,
    /// An executable `log/run`: the logger service `NAME-log`.
    pub log: bool,
    /// `env/`: variables set, and variables removed (empty files).
    pub env: Vec<(String, String)>,
    pub env_unset: Vec<String>,
    /// A `corral.toml` overlay.
    pub overlay: bool,
}

impl RunitDir {
    /// One line for `corral check`: what the directory became.
    pub fn summary(&self, name: &str) -> String {
        let mut parts = vec![format!("{}/run", self.dir.display())];
        if self.down {
            parts.push("down (not started at boot)".into());
        }
        if !self.env.is_empty() || !self.env_unset.is_empty() {
            parts.push(format!(
                "env/ ({} set, {} removed)",
                self.env.len(),
                self.env_unset.len()
            ));
        }
        if self.check {
            parts.push("check (readiness)".into());
        }
        if self.finish {
            parts.push("finish (after each exit)".into());
        }
        if self.log {
            parts.push(format!("log/run (the service {})", logger_name(name)));
        }
        if self.overlay {
            parts.push("corral.toml".into());
        }
        format!("runit: {name}: {}", parts.join(", "))
    }
}

/// The name of the logger service of runit service `name`.
pub fn logger_name(name: &str) -> String {
    format!("{name}-log")
}

/// Whether `dir` is a runit service directory: it has an executable
/// regular `run`.
pub fn is_service_dir(dir: &Path) -> bool {
    executable(&dir.join("run"))
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Reads what the directory holds besides `run`, with a warning for each
/// part corral does not take (runsv's own state, what is not done yet).
pub fn inspect(dir: &Path, warnings: &mut Vec<String>) -> Result<RunitDir, ConfigError> {
    let ignored: Vec<&str> = ["supervise", "control"]
        .into_iter()
        .filter(|p| dir.join(p).exists())
        .collect();
    if !ignored.is_empty() {
        warnings.push(format!(
            "{}: ignored {}: runsv's state and control files; corral supervises the service itself",
            dir.display(),
            ignored
                .iter()
                .map(|p| format!("{p}/"))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    let (env, env_unset) = match std::fs::symlink_metadata(dir.join("env")) {
        Ok(_) => envdir(&dir.join("env"))?,
        Err(_) => (Vec::new(), Vec::new()),
    };
    Ok(RunitDir {
        dir: dir.to_path_buf(),
        down: dir.join("down").exists(),
        check: executable(&dir.join("check")),
        finish: executable(&dir.join("finish")),
        log: is_service_dir(&dir.join("log")),
        env,
        env_unset,
        overlay: dir.join("corral.toml").exists(),
    })
}

/// What an envdir sets (in name order) and removes.
pub type EnvDir = (Vec<(String, String)>, Vec<String>);

/// The variables of an envdir, as chpst -e reads one: each file names a
/// variable, its first line is the value with trailing spaces and tabs
/// removed and NUL bytes made newlines; an empty file removes the
/// variable. Names starting with a dot, or holding `=`, are skipped.
pub fn envdir(dir: &Path) -> Result<EnvDir, ConfigError> {
    let error = |path: &Path, message: String| ConfigError {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| error(dir, format!("cannot read the envdir: {e}")))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| error(dir, format!("cannot list the envdir: {e}")))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
        if names.len() > MAX_ENV_FILES {
            return Err(error(
                dir,
                format!("more than {MAX_ENV_FILES} files: is this an envdir?"),
            ));
        }
    }
    names.sort();
    let mut set = Vec::new();
    let mut unset = Vec::new();
    for name in names {
        if name.starts_with('.') || name.contains('=') {
            continue;
        }
        let path = dir.join(&name);
        let bytes = crate::files::read_regular(&path, MAX_ENV_FILE, crate::files::Links::Follow)
            .map_err(|e| error(&path, format!("cannot read this envdir file: {e}")))?;
        if bytes.is_empty() {
            unset.push(name);
            continue;
        }
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let value: Vec<u8> = first
            .iter()
            .map(|&b| if b == 0 { b'\n' } else { b })
            .collect();
        let value = String::from_utf8(value)
            .map_err(|_| error(&path, "not UTF-8 text: corral passes text values".into()))?;
        set.push((name, value.trim_end_matches([' ', '\t']).to_string()));
    }
    Ok((set, unset))
}

/// The settings the directory implies, where the overlay does not give
/// them: `run` as the command, in the directory, restarted a second after
/// each exit without a limit (runsv's pace), `down` as `enabled = false`,
/// `check` as the readiness check. An overlay may not name a command.
pub fn apply(
    found: &RunitDir,
    raw: &mut RawService,
    source: &Source,
) -> Result<(), Vec<ConfigError>> {
    let span = 0..0;
    let spanned = |v| toml::Spanned::new(span.clone(), v);
    let mut errors = Vec::new();
    for (key, given) in [
        ("command", raw.command.as_ref().map(|c| c.span())),
        ("run", raw.run.as_ref().map(|r| r.span())),
    ] {
        if let Some(at) = given {
            errors.push(source.error(
                Some(source.line_of(at.start)),
                format!(
                    "{key}: a runit directory's command is its run file; remove {key} here (or replace the directory with a .toml file)"
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let dir = found.dir.display().to_string();
    raw.command = Some(toml::Spanned::new(span.clone(), vec![format!("{dir}/run")]));
    if raw.working_dir.is_none() {
        raw.working_dir = Some(toml::Spanned::new(span.clone(), dir.clone()));
    }
    let second = || Some(spanned(super::raw::Value::String("1s".into())));
    if raw.restart_delay.is_none() && raw.restart_delay_max.is_none() {
        raw.restart_delay = second();
        raw.restart_delay_max = second();
    }
    if raw.restart_limit.is_none() {
        raw.restart_limit = Some(toml::Spanned::new(span.clone(), 0));
    }
    if raw.enabled.is_none() && found.down {
        raw.enabled = Some(false);
    }
    if raw.ready.is_none() && found.check {
        raw.ready = Some(toml::Spanned::new(
            span.clone(),
            super::probes::RawReady {
                // Executed directly, like sv check does: its shebang decides.
                exec: Some(spanned(super::raw::Value::Array(vec![
                    super::raw::Value::String(format!("{dir}/check")),
                ]))),
                ..super::probes::RawReady::default()
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envdir_follows_chpst() {
        let dir = std::env::temp_dir().join(format!("corral-envdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let put = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        put("PLAIN", b"value\n");
        put("TRAIL", b"two words \t \t\nnot this line\n");
        put("NUL", b"a\0b\0");
        put("EMPTY", b"");
        put("BLANK", b"\n");
        put(".dot", b"hidden");
        put("A=B", b"never");
        let (set, unset) = envdir(&dir).unwrap();
        assert_eq!(
            set,
            [
                ("BLANK".to_string(), String::new()),
                ("NUL".to_string(), "a\nb\n".to_string()),
                ("PLAIN".to_string(), "value".to_string()),
                ("TRAIL".to_string(), "two words".to_string()),
            ]
        );
        assert_eq!(unset, ["EMPTY"]);
        put("BAD", b"\xff\n");
        let e = envdir(&dir).unwrap_err();
        assert!(
            e.path.ends_with("BAD") && e.message.contains("UTF-8"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
