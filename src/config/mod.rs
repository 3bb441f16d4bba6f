//! Loading the services directory: read every `NAME.toml`, parse it (`raw`),
//! validate and resolve it (`model`), then check the dependency graph
//! (`crate::graph`). All errors of all files are collected and reported
//! together as `path:line: message`; nothing starts unless there are none.

pub mod model;
pub mod raw;
pub mod units;
pub mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::{Backoff, Credentials, RestartPolicy, ServiceSpec};
use users::UserDb;

use crate::graph::Graph;

/// Where the services live unless `--services` or `CORRAL_SERVICES_DIR` say
/// otherwise.
pub const DEFAULT_SERVICES_DIR: &str = "/etc/corral/services.d";

/// A service file's path and text, kept to turn byte offsets into lines.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    text: Arc<str>,
}

impl Source {
    pub fn new(path: PathBuf, text: &str) -> Source {
        Source {
            path,
            text: Arc::from(text),
        }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text
            .as_bytes()
            .get(..end)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
            + 1
    }

    pub fn error(&self, line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }
}

/// One problem in the configuration, printed as `path:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// A loaded and validated services directory.
#[derive(Debug, Default)]
pub struct Config {
    pub services: Vec<ServiceSpec>,
    pub graph: Graph,
    /// Things worth telling that do not stop corral (stray files).
    pub warnings: Vec<String>,
}

/// Whether a missing directory is an error: it is when the user named the
/// directory, not when the default is simply absent (tini mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Empty,
    Error,
}

/// Loads and validates `dir` with the system's user databases.
pub fn load_dir(dir: &Path, missing: Missing) -> Result<Config, Vec<ConfigError>> {
    load_dir_with(dir, missing, &UserDb::load(Path::new("/")))
}

/// Loads and validates `dir` against the given user databases.
pub fn load_dir_with(
    dir: &Path,
    missing: Missing,
    users: &UserDb,
) -> Result<Config, Vec<ConfigError>> {
    let dir_error = |message: String| {
        vec![ConfigError {
            path: dir.to_path_buf(),
            line: None,
            message,
        }]
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing == Missing::Empty => {
            return Ok(Config::default());
        }
        Err(e) => {
            return Err(dir_error(format!(
                "cannot read the services directory: {e}"
            )));
        }
    };

    let mut paths = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => errors.extend(dir_error(format!(
                "cannot list the services directory: {e}"
            ))),
        }
    }
    paths.sort();

    let mut services = Vec::new();
    for path in paths {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file_name.starts_with('.') {
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".toml") else {
            warnings.push(format!(
                "{}: ignored: service files end in .toml",
                path.display()
            ));
            continue;
        };
        if path.is_dir() {
            warnings.push(format!(
                "{}: ignored: a directory, not a service file",
                path.display()
            ));
            continue;
        }
        match load_file(&path, stem, users) {
            Ok(spec) => services.push(spec),
            Err(errs) => errors.extend(errs),
        }
    }

    let graph = match Graph::build(&services) {
        Ok(graph) => graph,
        Err(errs) => {
            errors.extend(errs);
            Graph::default()
        }
    };
    if errors.is_empty() {
        Ok(Config {
            services,
            graph,
            warnings,
        })
    } else {
        Err(errors)
    }
}

/// Reads, parses and validates one service file.
fn load_file(path: &Path, name: &str, users: &UserDb) -> Result<ServiceSpec, Vec<ConfigError>> {
    let bare = Source::new(path.to_path_buf(), "");
    if let Err(why) = check_name(name) {
        return Err(vec![bare.error(None, why)]);
    }
    let bytes =
        std::fs::read(path).map_err(|e| vec![bare.error(None, format!("cannot read: {e}"))])?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = Source::new(path.to_path_buf(), &String::from_utf8_lossy(e.as_bytes()))
            .line_of(e.utf8_error().valid_up_to());
        vec![bare.error(Some(line), "not valid UTF-8: TOML files must be UTF-8")]
    })?;
    let source = Source::new(path.to_path_buf(), &text);
    let raw = raw::parse(&text).map_err(|e| {
        let line = e.span().map(|s| source.line_of(s.start));
        vec![source.error(line, e.message().trim_end().replace('\n', "; "))]
    })?;
    model::validate(name, &source, raw, users)
}

/// Service names become file stems, status keys and log prefixes: keep them
/// to a safe, printable set.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(ok_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "`{name}` is not a valid service name: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`, starting with a letter or digit"
        ));
    }
    Ok(())
}
