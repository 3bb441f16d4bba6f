//! `corral import KIND FILE [-o DIR]`: another supervisor's configuration
//! as corral service files. The converters are pure (`crontab.rs`); this
//! reads the input, checks that each file it made loads as corral would
//! load it, and writes them (or prints them without `-o`).

pub mod crontab;

use std::path::{Path, PathBuf};

/// What a converter made: service files by name, and notes for the user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub files: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// `text` as a TOML basic string, escaped.
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Which converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Crontab { system: bool },
}

/// Runs an import; the exit code: 0, or 2 when the input is not what it
/// should be or a file would be overwritten.
pub fn run(kind: Kind, file: &Path, out: Option<&Path>) -> i32 {
    let fail = |lines: &[String]| {
        for l in lines {
            eprintln!("{l}");
        }
        crate::runtime::EXIT_CONFIG
    };
    let bytes = match crate::files::read_regular(file, 4 << 20, crate::files::Links::Follow) {
        Ok(b) => b,
        Err(e) => return fail(&[format!("{}: cannot read: {e}", file.display())]),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return fail(&[format!("{}: not UTF-8 text", file.display())]);
    };
    let shown = file.display().to_string();
    let imported = match kind {
        Kind::Crontab { system } => crontab::import(&shown, &text, system),
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
