//! `corral import KIND FILE [-o DIR]`: another supervisor's configuration
//! as corral service files. The converters are pure (`crontab.rs`,
//! `supervisord.rs`); this reads the input (and what a supervisord
//! `[include]` names), checks that each file it made loads as corral would
//! load it, and writes them (or prints them without `-o`).

pub mod crontab;
mod glob;
mod ini;
pub mod supervisord;

use std::path::{Path, PathBuf};

/// What a converter made: service files by name, and notes for the user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub files: Vec<(String, String)>,
    pub notes: Vec<String>,
}

impl Imported {
    /// The text of the file made for service `name`.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// `text` as a TOML string, quoted and escaped as toml itself writes it.
pub fn toml_string(text: &str) -> String {
    use toml_writer::TomlWrite;
    let mut out = String::with_capacity(text.len() + 2);
    // Writing into a String cannot fail.
    let _ = out.value(text);
    out
}

/// Which converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Crontab { system: bool },
    Supervisord,
}

/// Most bytes of one input file.
const MAX_INPUT: u64 = 4 << 20;

/// Runs an import; the exit code: 0, or 2 when the input is not what it
/// should be or a file would be overwritten.
pub fn run(kind: Kind, file: &Path, out: Option<&Path>) -> i32 {
    let fail = |lines: &[String]| {
        for l in lines {
            eprintln!("{l}");
        }
        crate::runtime::EXIT_CONFIG
    };
    let text = match read_text(file) {
        Ok(t) => t,
        Err(e) => return fail(&[e]),
    };
    let shown = file.display().to_string();
    let imported = match kind {
        Kind::Crontab { system } => crontab::import(&shown, &text, system),
        Kind::Supervisord => {
            // %(here)s and [include] paths are relative to the file's
            // directory, made absolute as supervisord makes it.
            let dir = std::path::absolute(file)
                .ok()
                .and_then(|p| p.parent().map(|d| d.display().to_string()))
                .unwrap_or_else(|| "/".to_string());
            let env = |name: &str| std::env::var(name).ok();
            let mut include = |pattern: &str| {
                glob::files(pattern)
                    .into_iter()
                    .map(|p| read_text(Path::new(&p)).map(|t| (p, t)))
                    .collect::<Result<Vec<_>, String>>()
            };
            let mut host = supervisord::Host {
                env: &env,
                node: nix::sys::utsname::uname()
                    .map(|u| u.nodename().to_string_lossy().into_owned())
                    .unwrap_or_default(),
                include: &mut include,
            };
            supervisord::import(&shown, &dir, &text, &mut host)
        }
    };
    let imported = match imported {
        Ok(i) => i,
        Err(errors) => return fail(&errors),
    };
    for n in &imported.notes {
        eprintln!("note: {n}");
    }
    // Each file as corral would load it here: a user this machine lacks
    // may exist in the image, so that is a warning, not a refusal.
    let users = crate::config::users::UserDb::load(Path::new("/"));
    for (name, text) in &imported.files {
        let mut warnings = Vec::new();
        let path = PathBuf::from(format!("{name}.toml"));
        if let Err(errors) =
            crate::config::parse_service(&path, name, text.as_bytes(), &users, &mut warnings)
        {
            for e in errors {
                eprintln!("warning: {e} (check it where it will run: corral check)");
            }
        }
    }
    match out {
        None => {
            for (name, text) in &imported.files {
                println!("# ==> {name}.toml <==\n{text}");
            }
            0
        }
        Some(dir) => write_all(dir, &imported),
    }
}

/// A file's text, or why it cannot be had.
fn read_text(file: &Path) -> Result<String, String> {
    let bytes = crate::files::read_regular(file, MAX_INPUT, crate::files::Links::Follow)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", file.display()))
}

/// Writes every file into `dir`, or none when one of them exists already.
fn write_all(dir: &Path, imported: &Imported) -> i32 {
    let paths: Vec<PathBuf> = imported
        .files
        .iter()
        .map(|(n, _)| dir.join(format!("{n}.toml")))
        .collect();
    let existing: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        eprintln!(
            "corral import: would overwrite {}; nothing written (remove them or choose another -o)",
            existing.join(", ")
        );
        return crate::runtime::EXIT_CONFIG;
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("corral import: {}: {e}", dir.display());
        return crate::runtime::EXIT_CONFIG;
    }
    for (path, (_, text)) in paths.iter().zip(&imported.files) {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("corral import: {}: {e}", path.display());
            return 1;
        }
        println!("{}", path.display());
    }
    0
}
