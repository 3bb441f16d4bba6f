//! Container metadata: one file per image layer in `metadata.d/`
//! (`CORRAL_METADATA_DIR`, default /etc/corral/metadata.d), each with that
//! image's facts. Files sort by name, so a downstream image's file follows
//! its base's: the list is the image's ancestry, as `svctl inspect` shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{self, from_table};
use super::{ConfigError, Source, shape};

/// Where the metadata files live unless `CORRAL_METADATA_DIR` says
/// otherwise.
pub const DEFAULT_METADATA_DIR: &str = "/etc/corral/metadata.d";

/// A metadata file is a few facts: anything larger is a mistake.
const MAX_METADATA_FILE: u64 = 64 * 1024;

/// One image's facts, as `svctl inspect --json` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMeta {
    /// The file, e.g. `20-rbldnsd.toml`.
    pub file: String,
    pub name: String,
    pub version: Option<String>,
    pub build_time: Option<String>,
    pub gitref: Option<String>,
    pub url: Option<String>,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
}

crate::json::json_object!(ImageMeta {
    file,
    name,
    version,
    build_time,
    gitref,
    url,
    description,
    labels,
});

#[derive(Default)]
struct RawMeta {
    name: Option<Spanned<String>>,
    version: Option<String>,
    build_time: Option<Spanned<String>>,
    gitref: Option<String>,
    url: Option<Spanned<String>>,
    description: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

from_table!(RawMeta {
    name,
    version,
    build_time,
    gitref,
    url,
    description,
    labels,
});

#[cfg(test)]
pub(super) const META_KEYS: &[&str] = RawMeta::KEYS;

/// Every valid metadata file of `dir` in name order, and every error of
/// the others (`path:line: message`). A missing directory has none.
pub fn load(dir: &Path) -> (Vec<ImageMeta>, Vec<ConfigError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(e) => {
            let error = Source::new(dir.to_path_buf(), "")
                .error(None, format!("cannot read the metadata directory: {e}"));
            return (Vec::new(), vec![error]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut images = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let bare = Source::new(path.clone(), "");
        match crate::files::read_regular(&path, MAX_METADATA_FILE, crate::files::Links::Follow) {
            Ok(bytes) => match parse(&path, &bytes) {
                Ok(m) => images.push(m),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(bare.error(None, format!("cannot read: {e}"))),
        }
    }
    (images, errors)
}

/// The directory: `CORRAL_METADATA_DIR`, else the default.
pub fn dir() -> PathBuf {
    std::env::var_os("CORRAL_METADATA_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_METADATA_DIR), PathBuf::from)
}

/// Parses one metadata file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<ImageMeta, Vec<ConfigError>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec![
            Source::new(path.to_path_buf(), "")
                .error(None, "not valid UTF-8: TOML files must be UTF-8"),
        ]);
    };
    let source = Source::new(path.to_path_buf(), text);
    let doc = raw::parse(text).map_err(|e| vec![source.toml_error(&e)])?;
    let errors = shape::check_keys(&source, doc.get_ref(), shape::METADATA);
    if !errors.is_empty() {
        return Err(errors);
    }
    let raw = RawMeta::from_table(doc.get_ref()).map_err(|bad| vec![source.bad(bad)])?;
    let mut errors = Vec::new();
    let at = |s: &Spanned<String>| Some(source.line_of(s.span().start));
    let name = match &raw.name {
        Some(n) if !n.get_ref().trim().is_empty() => n.get_ref().clone(),
        Some(n) => {
            errors.push(source.error(
                at(n),
                "name is empty: name the image, e.g. name = \"rbldnsd\"",
            ));
            String::new()
        }
        None => {
            errors.push(source.error(
                Some(1),
                "no name: add name = \"...\", the image this file describes",
            ));
            String::new()
        }
    };
    if let Some(t) = &raw.build_time
        && t.get_ref().parse::<jiff::Timestamp>().is_err()
    {
        errors.push(source.error(
            at(t),
            format!(
                "build_time = \"{}\" is not an RFC 3339 time: write e.g. \"2026-11-30T10:00:00Z\" (date -u +%FT%TZ)",
                t.get_ref()
            ),
        ));
    }
    if let Some(u) = &raw.url
        && !(u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://"))
    {
        errors.push(source.error(
            at(u),
            format!("url = \"{}\" is not an http(s) URL", u.get_ref()),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ImageMeta {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name,
        version: raw.version,
        build_time: raw.build_time.map(Spanned::into_inner),
        gitref: raw.gitref,
        url: raw.url.map(Spanned::into_inner),
        description: raw.description,
        labels: raw.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<ImageMeta, Vec<String>> {
        parse(Path::new("20-app.toml"), text.as_bytes())
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_full_file_parses() {
        let m = one("name = \"rbldnsd\"\nversion = \"1.2\"\nbuild_time = \"2026-11-30T10:00:00Z\"\ngitref = \"abc123\"\nurl = \"https://example.org/rbldnsd\"\ndescription = \"DNS lists\"\n[labels]\nteam = \"dns\"\n").unwrap();
        assert_eq!(m.file, "20-app.toml");
        assert_eq!(m.name, "rbldnsd");
        assert_eq!(m.labels.get("team").map(String::as_str), Some("dns"));
    }

    #[test]
    fn every_mistake_has_its_line() {
        assert_eq!(
            one("version = \"1\"\n").unwrap_err(),
            ["20-app.toml:1: no name: add name = \"...\", the image this file describes"]
        );
        assert_eq!(
            one("name = \"a\"\nbuild_time = \"yesterday\"\nurl = \"ftp://x\"\n").unwrap_err(),
            [
                "20-app.toml:2: build_time = \"yesterday\" is not an RFC 3339 time: write e.g. \"2026-11-30T10:00:00Z\" (date -u +%FT%TZ)",
                "20-app.toml:3: url = \"ftp://x\" is not an http(s) URL"
            ]
        );
        assert_eq!(
            one("name = \"a\"\nverison = \"1\"\n").unwrap_err(),
            ["20-app.toml:2: unknown key `verison`: did you mean `version`?"]
        );
        assert_eq!(
            one("name = \"a\"\n[labels]\nn = 1\n").unwrap_err(),
            [
                "20-app.toml:2: `labels` must be a table of strings, e.g. { TZ = \"UTC\" }, not a table"
            ]
        );
    }

    #[test]
    fn files_sort_by_name_and_a_missing_directory_has_none() {
        let dir = std::env::temp_dir().join(format!("corral-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("20-app.toml"), "name = \"app\"\n").unwrap();
        std::fs::write(dir.join("10-base.toml"), "name = \"base\"\n").unwrap();
        std::fs::write(dir.join("README"), "not metadata").unwrap();
        std::fs::write(dir.join("30-bad.toml"), "version = 1\n").unwrap();
        let (images, errors) = load(&dir);
        let names: Vec<String> = images.into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["base", "app"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(load(&dir), (Vec::new(), Vec::new()));
    }
}
