//! Loading the services directory: read every `NAME.toml`, parse it (`raw`),
//! validate and resolve it (`model`), then check the dependency graph
//! (`crate::graph`). All errors of all files are collected and reported
//! together as `path:line: message`; nothing starts unless there are none.

pub mod actions;
mod checker;
pub mod environ;
pub mod logcfg;
pub mod metadata;
pub mod model;
#[doc(hidden)]
pub mod mutate;
pub mod prepare;
pub mod probes;
pub mod raw;
pub mod runit;
pub mod schedule;
pub mod schema;
mod shape;
pub mod units;
pub mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::{Backoff, Credentials, RestartPolicy, ServiceSpec};
use users::UserDb;

use crate::graph::{Graph, GraphError, Node};

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

    /// Text that is not TOML: toml's message, on one line, at its line.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let line = e.span().map(|s| self.line_of(s.start));
        self.error(line, e.message().trim_end().replace('\n', "; "))
    }

    /// A value the raw structs could not take, at its line.
    pub fn bad(&self, bad: raw::Bad) -> ConfigError {
        self.error(Some(self.line_of(bad.span.start)), bad.message)
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
    // tini mode (no services directory) needs no user database: a drop-in
    // for tini reads nothing in /etc before it starts the command.
    if missing == Missing::Empty
        && std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        return Ok(Config::default());
    }
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

    let mut entries_here = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            // The type from the listing itself (no stat per file); a link
            // (a ConfigMap mount makes every file one) is followed below.
            Ok(entry) => entries_here.push((entry.file_name(), entry.file_type().ok())),
            Err(e) => errors.extend(dir_error(format!(
                "cannot list the services directory: {e}"
            ))),
        }
    }
    // By file name (the order of their paths), compared as names: sorting
    // the whole paths (component by component, then musl's
    // byte-at-a-time memcmp over the directory's prefix) was a fifth of
    // loading 500 files.
    entries_here.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut services = Vec::new();
    for (name, kind) in entries_here {
        let path = dir.join(&name);
        let file_name = name.to_string_lossy().into_owned();
        if file_name.starts_with('.') {
            continue;
        }
        let is_dir = match kind {
            Some(kind) if !kind.is_symlink() => kind.is_dir(),
            _ => path.is_dir(),
        };
        if is_dir {
            if runit::is_service_dir(&path) {
                match load_runit(&path, &file_name, users, &mut warnings) {
                    Ok(specs) => services.extend(specs),
                    Err(errs) => errors.extend(errs),
                }
            } else {
                warnings.push(format!(
                    "{}: ignored: a directory without an executable run file (a runit service directory has one)",
                    path.display()
                ));
            }
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".toml") else {
            warnings.push(format!(
                "{}: ignored: service files end in .toml",
                path.display()
            ));
            continue;
        };
        match load_file(&path, stem, users, &mut warnings) {
            Ok(spec) => services.push(spec),
            Err(errs) => errors.extend(errs),
        }
    }

    // A runit directory `web` beside `web.toml`, or a `web-log.toml`
    // beside web/log/run: two services of one name.
    let mut by_name: std::collections::HashMap<&str, &Path> = std::collections::HashMap::new();
    let mut twice = Vec::new();
    for s in &services {
        if let Some(first) = by_name.insert(&s.name, &s.source.path) {
            twice.push(s.source.error(
                None,
                format!(
                    "a second service named {} (the first is {}): rename or remove one",
                    s.name,
                    first.display()
                ),
            ));
        }
    }
    if !twice.is_empty() {
        errors.extend(twice);
        return Err(errors);
    }
    let graph = match graph_of(&services) {
        Ok(graph) => {
            warn_disabled_requirements(&services, &graph, &mut warnings);
            graph
        }
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

/// The dependency graph of validated services, its errors as `path:line`
/// messages naming the files.
pub fn graph_of(services: &[ServiceSpec]) -> Result<Graph, Vec<ConfigError>> {
    let nodes: Vec<Node<'_>> = services
        .iter()
        .map(|s| Node {
            name: &s.name,
            requires: &s.requires,
        })
        .collect();
    let graph = Graph::build(&nodes).map_err(|errors| {
        errors
            .into_iter()
            .filter_map(|e| graph_error(services, e))
            .collect::<Vec<_>>()
    })?;
    let errors = scheduled_requirements(services, &graph);
    if errors.is_empty() {
        Ok(graph)
    } else {
        Err(errors)
    }
}

/// A scheduled oneshot is down between runs: nothing can wait for it.
fn scheduled_requirements(services: &[ServiceSpec], graph: &Graph) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (s, reqs) in services.iter().zip(&graph.requires) {
        for r in reqs.iter().filter_map(|&r| services.get(r)) {
            if r.schedule.is_some() {
                let line = s
                    .requires
                    .iter()
                    .find(|(n, _)| *n == r.name)
                    .map(|(_, l)| *l);
                errors.push(s.source.error(
                    line,
                    format!(
                        "requires {}, a scheduled oneshot, which runs only at its times: nothing can wait for it; remove it from requires",
                        r.name
                    ),
                ));
            }
        }
    }
    errors
}

fn graph_error(services: &[ServiceSpec], error: GraphError) -> Option<ConfigError> {
    match error {
        GraphError::Unknown { node, name, line } => Some(services.get(node)?.source.error(
            Some(line),
            format!(
                "requires unknown service `{name}`: there is no {name}.toml in the services directory"
            ),
        )),
        GraphError::Cycle { members, line } => {
            let members: Vec<&ServiceSpec> =
                members.iter().filter_map(|&i| services.get(i)).collect();
            let first = members.first()?;
            let names: Vec<&str> = members.iter().map(|s| s.name.as_str()).collect();
            let files: Vec<String> = members
                .iter()
                .map(|s| s.source.path.display().to_string())
                .collect();
            Some(first.source.error(
                line,
                format!(
                    "dependency cycle: {} -> {} (files: {}); remove one of these requires",
                    names.join(" -> "),
                    first.name,
                    files.join(", ")
                ),
            ))
        }
    }
}

/// An enabled service that requires a disabled one waits at boot until
/// the requirement is started by hand: legal, but worth saying.
fn warn_disabled_requirements(services: &[ServiceSpec], graph: &Graph, warnings: &mut Vec<String>) {
    for (s, reqs) in services.iter().zip(&graph.requires) {
        for r in reqs.iter().filter_map(|&r| services.get(r)) {
            if s.enabled && !r.enabled {
                let line = s
                    .requires
                    .iter()
                    .find(|(n, _)| *n == r.name)
                    .map_or(1, |(_, l)| *l);
                warnings.push(format!(
                    "{}:{line}: {} requires {}, which is disabled: {} waits until `svctl start {}`",
                    s.source.path.display(),
                    s.name,
                    r.name,
                    s.name,
                    r.name
                ));
            }
        }
    }
}

/// A corral that is not root cannot switch users: every `user`/`group` is
/// an error (`path:line`), unless `ignore` (CORRAL_IGNORE_USER=1) makes
/// those services run as corral's own user, with a warning each.
pub fn check_identity(
    config: &mut Config,
    own_uid: u32,
    ignore: bool,
) -> Result<Vec<String>, Vec<ConfigError>> {
    if own_uid == 0 {
        return Ok(Vec::new());
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for s in &mut config.services {
        let name = s.name.clone();
        let source = s.source.clone();
        let mut creds: Vec<(String, &mut Option<Credentials>)> =
            vec![(name.clone(), &mut s.credentials)];
        for a in &mut s.actions {
            if let actions::Does::Command { credentials, .. } = &mut a.does {
                creds.push((format!("{name}/{}", a.name), credentials));
            }
        }
        for (who, slot) in creds {
            let Some(c) = slot.as_ref() else { continue };
            let what = format!(
                "{who} runs as {}, but corral runs as uid {own_uid}, not root, and cannot switch users",
                c.display
            );
            if ignore {
                warnings.push(format!(
                    "{}:{}: {what}; running it as uid {own_uid} (CORRAL_IGNORE_USER=1)",
                    source.path.display(),
                    c.line
                ));
                *slot = None;
            } else {
                errors.push(source.error(
                    Some(c.line),
                    format!("{what}: run corral as root, remove user/group, or set CORRAL_IGNORE_USER=1 to run it as uid {own_uid}"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

/// The largest service file read; real ones are a few hundred bytes.
pub const MAX_SERVICE_FILE: u64 = 1024 * 1024;

/// Reads, parses and validates one service file.
fn load_file(
    path: &Path,
    name: &str,
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    let bare = Source::new(path.to_path_buf(), "");
    if let Err(why) = check_name(name) {
        return Err(vec![bare.error(None, why)]);
    }
    // A FIFO, a device or /dev/zero named x.toml must not hang or fill
    // corral; a symlink is fine (ConfigMap mounts are made of them).
    let bytes = crate::files::read_regular(path, MAX_SERVICE_FILE, crate::files::Links::Follow)
        .map_err(|e| vec![bare.error(None, format!("cannot read: {e}"))])?;
    parse_service(path, name, &bytes, users, warnings)
}

/// The services of runit directory `dir`: `name`, and `name-log` when
/// there is a `log/run`, fed with `name`'s stdout through a pipe corral
/// holds. The logger is a requirement of the service: it starts first
/// and stops last, so the service's last lines reach it.
fn load_runit(
    dir: &Path,
    name: &str,
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Result<Vec<ServiceSpec>, Vec<ConfigError>> {
    let mut spec = load_runit_service(dir, name, users, warnings)?;
    if !spec.runit.as_ref().is_some_and(|r| r.log) {
        return Ok(vec![spec]);
    }
    let log_name = runit::logger_name(name);
    let mut logger = load_runit_service(&dir.join("log"), &log_name, users, warnings)?;
    logger.log_pipe = Some(model::LogPipe::Reader(name.to_string()));
    spec.log_pipe = Some(model::LogPipe::Writer(name.to_string()));
    spec.requires.push((log_name, 1));
    Ok(vec![spec, logger])
}

/// One service of a runit directory: its `run`, what else is there, and
/// its `corral.toml` on top.
fn load_runit_service(
    dir: &Path,
    name: &str,
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    let bare = Source::new(dir.join("run"), "");
    check_name(name).map_err(|why| vec![bare.error(None, why)])?;
    // The service runs in its directory, whatever corral's own is.
    let dir = &std::path::absolute(dir).map_err(|e| vec![bare.error(None, e.to_string())])?;
    let found = runit::inspect(dir, warnings).map_err(|e| vec![e])?;
    let overlay = dir.join("corral.toml");
    let (path, bytes) = if found.overlay {
        let bytes =
            crate::files::read_regular(&overlay, MAX_SERVICE_FILE, crate::files::Links::Follow)
                .map_err(|e| {
                    vec![Source::new(overlay.clone(), "").error(None, format!("cannot read: {e}"))]
                })?;
        (overlay, bytes)
    } else {
        (dir.join("run"), Vec::new())
    };
    let mut spec = parse_with(&path, name, &bytes, users, warnings, |raw, source| {
        runit::apply(&found, raw, source)
    })?;
    // The envdir below, the overlay's `env` on top.
    let mut env = found.env.clone();
    env.retain(|(k, _)| !spec.env.iter().any(|(o, _)| o == k));
    env.append(&mut spec.env);
    spec.env = env;
    spec.env_unset = found
        .env_unset
        .iter()
        .filter(|u| !spec.env.iter().any(|(k, _)| k == *u))
        .cloned()
        .collect();
    spec.runit = Some(Box::new(found));
    Ok(spec)
}

/// Parses and validates the bytes of one service file named `name` at
/// `path`. Never panics, whatever the bytes (fuzzed).
pub fn parse_service(
    path: &Path,
    name: &str,
    bytes: &[u8],
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    parse_with(path, name, bytes, users, warnings, |_, _| Ok(()))
}

/// `parse_service`, with `adjust` given the file as written before it is
/// validated (a runit directory fills in what its files imply).
fn parse_with(
    path: &Path,
    name: &str,
    bytes: &[u8],
    users: &UserDb,
    warnings: &mut Vec<String>,
    adjust: impl FnOnce(&mut raw::RawService, &Source) -> Result<(), Vec<ConfigError>>,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = Source::new(path.to_path_buf(), &String::from_utf8_lossy(bytes))
            .line_of(e.valid_up_to());
        vec![ConfigError {
            path: path.to_path_buf(),
            line: Some(line),
            message: "not valid UTF-8: TOML files must be UTF-8".into(),
        }]
    })?;
    let source = Source::new(path.to_path_buf(), text);
    // The file is parsed once. Every unknown key and wrong kind of value
    // comes first, all of them, in plain words (`shape`); the tree is then
    // copied into the raw structs (`raw`) and validated (`model`).
    // A supervisord.conf or a crontab dropped in as x.toml is not a TOML
    // mistake to point at: say what it is and how to convert it. (An INI
    // file may even parse as TOML, with every key unknown.)
    let foreign = || {
        let file = path.display();
        let advice = if crate::import::supervisord::looks_like(text) {
            format!(
                "this looks like a supervisord configuration, not a service file: run `corral import supervisord {file} -o DIR` and use the files it writes"
            )
        } else if crate::import::crontab::looks_like(text) {
            format!(
                "this looks like a crontab, not a service file: run `corral import crontab {file} -o DIR` (--system for /etc/crontab and /etc/cron.d files) and use the files it writes"
            )
        } else {
            return None;
        };
        Some(vec![source.error(None, advice)])
    };
    let doc =
        raw::parse(text).map_err(|e| foreign().unwrap_or_else(|| vec![source.toml_error(&e)]))?;
    let errors = shape::check(&source, doc.get_ref());
    if !errors.is_empty() {
        return Err(foreign().unwrap_or(errors));
    }
    let mut raw =
        raw::RawService::from_table(doc.get_ref()).map_err(|bad| vec![source.bad(bad)])?;
    adjust(&mut raw, &source)?;
    model::validate(name, &source, raw, users, warnings)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use users::{parse_group, parse_passwd};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(files: &[(&str, &str)]) -> Dir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let dir =
                std::env::temp_dir().join(format!("corral-config-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn users() -> UserDb {
        UserDb {
            users: parse_passwd(
                "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            groups: parse_group("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwww:x:33:app\n"),
        }
    }

    fn load(files: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let dir = Dir::new(files);
        load_dir_with(&dir.0, Missing::Error, &users()).map_err(|errs| {
            errs.iter()
                .map(|e| e.to_string().replace(&format!("{}/", dir.0.display()), ""))
                .collect()
        })
    }

    /// The single error of a one-file directory.
    fn error(text: &str) -> String {
        let errs = load(&[("svc.toml", text)]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn full_service_resolves() {
        let c = load(&[
            (
                "web.toml",
                r#"
command = ["/usr/sbin/nginx", "-g", "daemon off;"]
user = "app"
requires = ["db"]
env = { MODE = "prod" }
working_dir = "/srv"
restart = "on-failure"
restart_delay = "250ms"
restart_delay_max = "10s"
restart_reset = 60
restart_limit = 0
stop_signal = "QUIT"
stop_timeout = "2s"
"#,
            ),
            (
                "db.toml",
                "run = \"exec db\"\ngroup = \"www\"\nenabled = false\n",
            ),
        ])
        .unwrap();
        let web = c.services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(web.argv, ["/usr/sbin/nginx", "-g", "daemon off;"]);
        let cred = web.credentials.as_ref().unwrap();
        assert_eq!((cred.uid, cred.gid), (Some(1000), 1000));
        assert_eq!(cred.groups, vec![1000, 33]);
        assert_eq!(cred.home.as_deref(), Some("/home/app"));
        assert_eq!(web.env, vec![("MODE".to_string(), "prod".to_string())]);
        assert_eq!(web.restart, RestartPolicy::OnFailure);
        assert_eq!(web.backoff.initial, Duration::from_millis(250));
        assert_eq!(web.backoff.reset_after, Duration::from_secs(60));
        assert_eq!(web.backoff.limit, None);
        assert_eq!(web.stop_signal, nix::sys::signal::Signal::SIGQUIT);
        assert_eq!(web.stop_timeout, Duration::from_secs(2));
        let db = c.services.iter().find(|s| s.name == "db").unwrap();
        assert_eq!(db.argv, ["/bin/sh", "-c", "exec db"]);
        assert!(!db.enabled);
        let cred = db.credentials.as_ref().unwrap();
        assert_eq!(
            (cred.uid, cred.gid, cred.groups.clone()),
            (None, 33, vec![33])
        );
        // db first: web requires it.
        let order: Vec<&str> = c
            .graph
            .order
            .iter()
            .map(|&i| c.services[i].name.as_str())
            .collect();
        assert_eq!(order, ["db", "web"]);
    }

    #[test]
    fn ready_health_and_oneshot_keys_resolve() {
        use super::probes::{Kind, OnUnhealthy, Probe, ReadyMethod};
        let c = load(&[
            ("a.toml", "run = \"x\"\n[ready]\ntcp = \"localhost:5432\"\ntimeout = \"9s\"\n[health]\nexec = [\"pg_isready\", \"-q\"]\nretries = 5\non_unhealthy = \"restart\"\nstart_period = \"1m\"\n"),
            ("b.toml", "run = \"x\"\ntype = \"oneshot\"\ntimeout = 30\noptional = true\n"),
            ("c.toml", "run = \"x\"\n[ready]\nexec = \"pg_isready -q\"\n"),
            ("d.toml", "run = \"x\"\n[ready]\nnotify = true\n"),
            ("e.toml", "run = \"x\"\n[ready]\nfd = 3\n"),
        ])
        .unwrap();
        let a = &c.services[0];
        let r = a.ready.as_ref().unwrap();
        assert_eq!(
            r.method,
            ReadyMethod::Poll(Probe::Tcp {
                addr: "127.0.0.1:5432".parse().unwrap(),
                expect: None
            })
        );
        assert_eq!(r.timeout, Duration::from_secs(9));
        let h = a.health.as_ref().unwrap();
        assert_eq!(h.probe, Probe::Exec(vec!["pg_isready".into(), "-q".into()]));
        assert_eq!(
            (h.retries, h.on_unhealthy, h.start_period),
            (5, OnUnhealthy::Restart, Duration::from_secs(60))
        );
        assert_eq!(
            c.services[1].kind,
            Kind::Oneshot {
                timeout: Some(Duration::from_secs(30)),
                optional: true
            }
        );
        let exec = &c.services[2].ready.as_ref().unwrap().method;
        assert_eq!(
            exec,
            &ReadyMethod::Poll(Probe::Exec(vec![
                "/bin/sh".into(),
                "-c".into(),
                "pg_isready -q".into()
            ]))
        );
        assert_eq!(
            c.services[3].ready.as_ref().unwrap().method,
            ReadyMethod::Notify
        );
        assert_eq!(
            c.services[4].ready.as_ref().unwrap().method,
            ReadyMethod::Fd(3)
        );
        // A ready file whose directory does not exist yet is a warning.
        let c = load(&[(
            "f.toml",
            "run = \"x\"\n[ready]\nfile = \"/nonexistent-dir/sock\"\n",
        )])
        .unwrap();
        assert!(
            c.warnings[0].contains("its directory does not exist now"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn http_checks_and_tcp_greetings_resolve() {
        use super::probes::{HttpCheck, Probe, ReadyMethod};
        let c = load(&[
            ("a.toml", "run = \"x\"\n[ready]\nhttp = \"http://127.0.0.1:8080/healthz?full=1#top\"\ncheck_timeout = \"2s\"\n"),
            ("b.toml", "run = \"x\"\n[ready]\nhttp = \"http://[::1]\"\n[health]\ntcp = \"127.0.0.1:25\"\nexpect = \"220 \"\n"),
            ("c.toml", "run = \"x\"\n[health]\nhttp = \"http://localhost/\"\n"),
        ])
        .unwrap();
        let a = c.services[0].ready.as_ref().unwrap();
        assert_eq!(
            a.method,
            ReadyMethod::Poll(Probe::Http(HttpCheck {
                addr: "127.0.0.1:8080".parse().unwrap(),
                host: "127.0.0.1:8080".into(),
                path: "/healthz?full=1".into(),
            }))
        );
        assert_eq!(a.check_timeout, Duration::from_secs(2));
        let ReadyMethod::Poll(Probe::Http(h)) = &a.method else {
            unreachable!()
        };
        assert_eq!(
            String::from_utf8(h.request()).unwrap(),
            "GET /healthz?full=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: corral\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let b = &c.services[1];
        assert_eq!(
            b.ready.as_ref().unwrap().method,
            ReadyMethod::Poll(Probe::Http(HttpCheck {
                addr: "[::1]:80".parse().unwrap(),
                host: "[::1]".into(),
                path: "/".into(),
            }))
        );
        assert_eq!(
            b.ready.as_ref().unwrap().check_timeout,
            super::probes::DEFAULT_READY_CHECK_TIMEOUT
        );
        assert_eq!(
            b.health.as_ref().unwrap().probe,
            Probe::Tcp {
                addr: "127.0.0.1:25".parse().unwrap(),
                expect: Some("220 ".into())
            }
        );
        let Probe::Http(h) = &c.services[2].health.as_ref().unwrap().probe else {
            panic!("not an http check")
        };
        assert_eq!(h.addr, "127.0.0.1:80".parse().unwrap());
    }

    /// A service as loaded from `text`, with its source text left out (the
    /// rest is what corral runs).
    fn resolved(text: &str) -> Option<String> {
        let c = load(&[("svc.toml", text)]).ok()?;
        let mut spec = c.services.into_iter().next()?;
        spec.source = Source::new(PathBuf::from("svc.toml"), "");
        Some(format!("{spec:?}"))
    }

    /// The bases a key of `[table]` can be tried on.
    fn bases(table: &str) -> Vec<String> {
        match table {
            "ready" => vec!["run = \"x\"\n[ready]\nfile = \"/x\"\n".into()],
            "health" => vec!["run = \"x\"\n[health]\nexec = \"true\"\n".into()],
            "schedule" => {
                vec!["run = \"x\"\ntype = \"oneshot\"\n[schedule]\nevery = \"1m\"\n".into()]
            }
            "prepare" => vec!["run = \"x\"\n[[prepare]]\nmkdir = \"/run/x\"\n".into()],
            "actions" => vec![
                "run = \"x\"\n[actions.a]\nrun = \"true\"\n".into(),
                "run = \"x\"\n[actions.a]\nsignal = \"HUP\"\n".into(),
            ],
            "log" => vec![
                "run = \"x\"\n[log]\n".into(),
                "run = \"x\"\n[log]\nfile = \"/var/log/x/current\"\n".into(),
            ],
            _ => vec![
                "run = \"x\"\n".into(),
                "run = \"x\"\ntype = \"oneshot\"\n".into(),
            ],
        }
    }

    /// Every key's documented default (which `corral schema` publishes),
    /// written out, changes nothing: the table cannot drift from the
    /// loader.
    #[test]
    fn schema_defaults_are_the_loaders() {
        use super::shape::{Key, SERVICE, Want};
        fn each(table: &str, keys: &[Key], checked: &mut usize) {
            for k in keys {
                if let Want::Table(inner) = k.want {
                    each(k.name, inner, checked);
                    continue;
                }
                if let Want::Map(inner) | Want::TableList(inner) = k.want {
                    each(k.name, inner, checked);
                }
                let Some(default) = k.default else { continue };
                let tried = bases(table).into_iter().find_map(|base| {
                    let with = resolved(&format!("{base}{} = {default}\n", k.name))?;
                    Some((resolved(&base)?, with))
                });
                let Some((without, with)) = tried else {
                    panic!("{table}.{} = {default} does not load on any base", k.name)
                };
                assert_eq!(
                    without, with,
                    "{table}.{} = {default} is not the default",
                    k.name
                );
                *checked += 1;
            }
        }
        let mut checked = 0;
        each("", SERVICE, &mut checked);
        assert!(checked > 20, "{checked}");
    }

    /// The choices the schema lists are exactly what the loader takes: each
    /// loads, and a value beside them is refused with the others named.
    #[test]
    fn schema_choices_are_the_loaders() {
        use super::shape::{Key, SERVICE, Want};
        fn each(table: &str, keys: &[Key]) {
            for k in keys {
                match k.want {
                    Want::Table(inner) | Want::Map(inner) | Want::TableList(inner) => {
                        each(k.name, inner)
                    }
                    Want::Choice(choices) => {
                        let base = bases(table).remove(0);
                        for c in choices {
                            let text = format!("{base}{} = \"{c}\"\n", k.name);
                            assert!(load(&[("svc.toml", &text)]).is_ok(), "{text}");
                        }
                        let text = format!("{base}{} = \"bogus\"\n", k.name);
                        let errs = load(&[("svc.toml", &text)]).unwrap_err();
                        for c in choices {
                            assert!(
                                errs[0].contains(&format!("\"{c}\"")) || errs[0].contains(c),
                                "{errs:?} does not name {c}"
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        each("", SERVICE);
    }

    #[test]
    fn actions_resolve() {
        use super::actions::{DEFAULT_TIMEOUT, Does, When};
        use nix::sys::signal::Signal;
        let c = load(&[(
            "web.toml",
            "run = \"x\"\nuser = \"app\"\ngroup = \"www\"\n\
             [actions.validate]\nrun = \"nginx -t\"\ndescription = \"check the config\"\n\
             [actions.update]\ncommand = [\"/usr/bin/fetch\", \"--all\"]\nuser = \"nobody\"\ntimeout = \"5m\"\nwhen = \"any\"\n\
             [actions.as-group]\nrun = \"id\"\ngroup = \"nogroup\"\n\
             [actions.reload]\nsignal = \"HUP\"\ngroup = true\n",
        )])
        .unwrap();
        let web = &c.services[0];
        let names: Vec<&str> = web.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["as-group", "reload", "update", "validate"]);
        let validate = web.action("validate").unwrap();
        assert_eq!(validate.description.as_deref(), Some("check the config"));
        assert_eq!(validate.timeout, DEFAULT_TIMEOUT);
        assert_eq!(validate.when, When::Running);
        // The script's $0 names the action; arguments follow it.
        assert_eq!(
            validate.argv(&["a".into(), "b c".into()]).unwrap(),
            ["/bin/sh", "-c", "nginx -t", "web/validate", "a", "b c"]
        );
        assert!(matches!(
            &validate.does,
            Does::Command {
                credentials: None,
                ..
            }
        ));
        let update = web.action("update").unwrap();
        assert_eq!(update.timeout, Duration::from_secs(300));
        assert_eq!(update.when, When::Any);
        assert_eq!(
            update.argv(&["x".into()]).unwrap(),
            ["/usr/bin/fetch", "--all", "x"]
        );
        // Its own user, with that user's group (not the service's).
        let Does::Command {
            credentials: Some(cr),
            ..
        } = &update.does
        else {
            panic!("{update:?}")
        };
        assert_eq!((cr.uid, cr.gid), (Some(65534), 65534));
        // Only a group: the service's user with that group.
        let Does::Command {
            credentials: Some(cr),
            ..
        } = &web.action("as-group").unwrap().does
        else {
            panic!()
        };
        assert_eq!((cr.uid, cr.gid), (Some(1000), 65534));
        assert_eq!(
            web.action("reload").unwrap().does,
            Does::Signal {
                signal: Signal::SIGHUP,
                group: true
            }
        );
        assert!(web.action("reload").unwrap().argv(&[]).is_none());
    }

    #[test]
    fn non_root_cannot_give_an_action_another_user() {
        let mut c = load(&[(
            "web.toml",
            "run = \"x\"\n[actions.update]\nrun = \"x\"\nuser = \"nobody\"\n",
        )])
        .unwrap();
        let errs = check_identity(&mut c, 1000, false).unwrap_err();
        assert!(
            errs[0].to_string().contains("web/update runs as nobody"),
            "{errs:?}"
        );
        let warned = check_identity(&mut c, 1000, true).unwrap();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(matches!(
            c.services[0].actions[0].does,
            super::actions::Does::Command {
                credentials: None,
                ..
            }
        ));
    }

    #[test]
    fn enabled_env_and_user_env_resolve_from_corrals_environment() {
        let files = [
            (
                "cron.toml",
                "run = \"x\"\nenabled = false\nenabled_env = \"ENABLE_CRON\"\n",
            ),
            (
                "app.toml",
                "run = \"x\"\nuser = \"app\"\ngroup = \"www\"\nuser_env = \"APP_UID\"\nenv_file = [\"/run/a.env\", \"-/run/b.env\"]\nenv_from_file = { DB_PASSWORD = \"/run/secrets/db\" }\n",
            ),
        ];
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let mut c = load(&files).unwrap();
        environ::resolve(
            &mut c,
            env(&[("ENABLE_CRON", "Yes"), ("APP_UID", "1001:100")]),
        )
        .unwrap();
        let (app, cron) = (&c.services[0], &c.services[1]);
        assert!(cron.enabled, "ENABLE_CRON=Yes enables it");
        let cr = app.credentials.as_ref().unwrap();
        assert_eq!((cr.uid, cr.gid), (Some(1001), 100));
        assert_eq!(cr.groups.first(), Some(&100), "{:?}", cr.groups);
        // The name and HOME stay the image user's.
        assert_eq!(cr.user_name.as_deref(), Some("app"));
        assert_eq!(cr.home.as_deref(), Some("/home/app"));
        assert_eq!(
            app.env_files,
            [
                environ::EnvFile {
                    path: "/run/a.env".into(),
                    optional: false
                },
                environ::EnvFile {
                    path: "/run/b.env".into(),
                    optional: true
                }
            ]
        );
        assert_eq!(
            app.env_from_files,
            [("DB_PASSWORD".to_string(), PathBuf::from("/run/secrets/db"))]
        );
        // Unset: as written.
        let mut c = load(&files).unwrap();
        environ::resolve(&mut c, env(&[])).unwrap();
        assert!(!c.services[1].enabled);
        assert_eq!(c.services[0].credentials.as_ref().unwrap().uid, Some(1000));
        // Bad values: errors naming the variable and the line, not the value.
        let mut c = load(&files).unwrap();
        let errs = environ::resolve(
            &mut c,
            env(&[("ENABLE_CRON", "maybe-s3cret"), ("APP_UID", "root-s3cret")]),
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text.iter().all(|t| !t.contains("s3cret")), "{text:?}");
        assert!(
            text.iter().any(|t| {
                t.ends_with(
            "app.toml:4: APP_UID (user_env of app) must be a uid or uid:gid, e.g. 1001 or 1001:1001"
        )
            }),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains(
                "cron.toml:3: ENABLE_CRON (enabled_env of cron) must be 1, true, yes or on"
            )),
            "{text:?}"
        );
    }

    #[test]
    fn prepare_steps_resolve_and_missing_sources_are_warned_about() {
        use super::prepare::{Owner, Verb};
        let dir = Dir::new(&[(
            "app.toml",
            "run = \"x\"\nuser = \"app\"\n\
             [[prepare]]\nmkdir = \"/run/app\"\nmode = \"0750\"\nowner = \"root\"\n\
             [[prepare]]\nrender = { from = \"templates/app.conf.in\", to = \"/run/app/app.conf\" }\n\
             [[prepare]]\nchown = \"/var/lib/app\"\nowner = \"www:app\"\n",
        )]);
        let users = UserDb {
            users: parse_passwd(
                "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            groups: parse_group("root:x:0:\napp:x:1000:\n"),
        };
        let c = load_dir_with(&dir.0, Missing::Error, &users).unwrap();
        let steps = &c.services[0].prepare;
        assert_eq!(
            steps[0].verb,
            Verb::Mkdir {
                path: "/run/app".into(),
                mode: 0o750
            }
        );
        assert_eq!(steps[0].owner, Owner::Ids { uid: 0, gid: 0 });
        assert_eq!(steps[0].line, 3);
        // A relative `from` is the service file's directory's.
        assert_eq!(
            steps[1].verb,
            Verb::Render {
                from: dir.0.join("templates/app.conf.in"),
                to: "/run/app/app.conf".into(),
                mode: 0o644
            }
        );
        assert_eq!(steps[1].owner, Owner::Service);
        assert_eq!(steps[2].owner, Owner::Ids { uid: 33, gid: 1000 });
        // The template is not there: a warning with its line, not an error.
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("app.toml:7: [[prepare]] step 2:")
                    && w.contains("templates/app.conf.in does not exist here")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn nothing_may_require_a_scheduled_job() {
        let errs = load(&[
            (
                "backup.toml",
                "run = \"x\"\ntype = \"oneshot\"\n[schedule]\ncron = \"@daily\"\n",
            ),
            ("app.toml", "run = \"x\"\n\nrequires = [\"backup\"]\n"),
        ])
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "app.toml:3: requires backup, a scheduled oneshot, which runs only at its times: nothing can wait for it; remove it from requires"
            ]
        );
        // A scheduled job may require others (it starts them if down).
        let c = load(&[
            ("db.toml", "run = \"x\"\n"),
            (
                "backup.toml",
                "run = \"x\"\ntype = \"oneshot\"\nrequires = [\"db\"]\n[schedule]\nevery = \"1h\"\nat_start = true\njitter = \"5m\"\novertap = 1\n",
            ),
        ]);
        assert!(c.is_err(), "the typo is caught");
        let c = load(&[
            ("db.toml", "run = \"x\"\n"),
            ("backup.toml", "run = \"x\"\ntype = \"oneshot\"\nrequires = [\"db\"]\n[schedule]\nevery = \"1h\"\nat_start = true\njitter = \"5m\"\noverlap = \"queue\"\nmissed = \"run-once\"\n"),
        ])
        .unwrap();
        let sc = c.services[0].schedule.as_ref().unwrap();
        assert_eq!(
            sc.when,
            super::schedule::When::Every(Duration::from_secs(3600))
        );
        assert!(sc.at_start);
        assert_eq!(sc.jitter, Duration::from_secs(300));
        assert_eq!(sc.overlap, super::schedule::Overlap::Queue);
        assert_eq!(sc.missed, super::schedule::Missed::RunOnce);
    }

    #[test]
    fn a_long_cycle_is_printed_whole() {
        let files: Vec<(String, String)> = (0..50)
            .map(|i| {
                (
                    format!("s{i:02}.toml"),
                    format!("run = \"x\"\nrequires = [\"s{:02}\"]\n", (i + 1) % 50),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let errs = load(&refs).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        let names: Vec<String> = (0..50).map(|i| format!("s{i:02}")).collect();
        let want = format!(
            "s00.toml:2: dependency cycle: {} -> s00 (files: ",
            names.join(" -> ")
        );
        assert!(errs[0].starts_with(&want), "{}", errs[0]);
    }

    #[test]
    fn ten_thousand_services_in_a_chain_load() {
        let dir = Dir::new(&[]);
        for i in 0..10_000 {
            let requires = if i > 0 {
                format!("requires = [\"s{}\"]\n", i - 1)
            } else {
                String::new()
            };
            std::fs::write(
                dir.0.join(format!("s{i}.toml")),
                format!("command = [\"/bin/true\"]\n{requires}"),
            )
            .unwrap();
        }
        let t0 = std::time::Instant::now();
        let c = load_dir_with(&dir.0, Missing::Error, &users()).unwrap();
        let took = t0.elapsed();
        assert_eq!(c.services.len(), 10_000);
        assert_eq!(
            c.graph.order.first().map(|&i| c.services[i].name.as_str()),
            Some("s0")
        );
        assert_eq!(
            c.graph.order.last().map(|&i| c.services[i].name.as_str()),
            Some("s9999")
        );
        // Generous even for a debug build on a loaded machine; the release
        // build takes well under half a second.
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn mutated_service_files_never_panic() {
        use super::mutate::{Rng, mutate};
        let seeds: Vec<Vec<u8>> = [
            &include_bytes!("../../services.d.example/app.toml")[..],
            include_bytes!("../../services.d.example/db.toml"),
            include_bytes!("../../services.d.example/migrate.toml"),
            include_bytes!("../../examples/unbound/services.d/unbound.toml"),
            include_bytes!("../../services.d.example/ticker.toml"),
            b"command = [\"/x\"]\nuser = 5\ngroup = \"nogroup\"\nrequires = [\"a\", \"b\"]\nenv = { A = \"1\" }\nstop_signal = 15\n[ready]\ntcp = \"127.0.0.1:80\"\n[health]\nexec = [\"true\"]\n[log]\nfile = \"/var/log/x\"\nmax_size = \"1MiB\"\n",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let users = users();
        let mut rng = Rng(0x5EED_C0DE);
        let mut parsed = Vec::new();
        for i in 0..20_000 {
            let mut data = seeds[i % seeds.len()].clone();
            mutate(&mut rng, &mut data);
            let mut warnings = Vec::new();
            if let Ok(spec) =
                parse_service(Path::new("/s/x.toml"), "x", &data, &users, &mut warnings)
            {
                parsed.push(spec);
            }
        }
        // Whatever survived validation also goes through the graph.
        let _ = graph_of(&parsed);
        assert!(!parsed.is_empty(), "some mutants stay valid");
    }

    #[test]
    fn non_root_cannot_switch_users_unless_told_to_ignore() {
        let files = [
            ("low.toml", "run = \"x\"\n\nuser = \"nobody\"\n"),
            ("plain.toml", "run = \"x\"\n"),
        ];
        let mut c = load(&files).unwrap();
        assert!(
            check_identity(&mut c, 0, false).unwrap().is_empty(),
            "root may"
        );
        let errs = check_identity(&mut c, 12345, false).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().ends_with("low.toml:3: low runs as nobody, but corral runs as uid 12345, not root, and cannot switch users: run corral as root, remove user/group, or set CORRAL_IGNORE_USER=1 to run it as uid 12345"), "{}", errs[0]);
        let warnings = check_identity(&mut c, 12345, true).unwrap();
        assert!(
            warnings[0].contains("running it as uid 12345"),
            "{warnings:?}"
        );
        assert!(c.services.iter().all(|s| s.credentials.is_none()));
    }

    #[test]
    fn numeric_user_without_passwd_entry_uses_its_own_gid() {
        let c = load(&[("s.toml", "command = [\"/bin/true\"]\nuser = 12345\n")]).unwrap();
        let cred = c.services[0].credentials.clone().unwrap();
        assert_eq!(
            (cred.uid, cred.gid, cred.home.as_deref()),
            (Some(12345), 12345, Some("/"))
        );
        let c = load(&[("s.toml", "command = [\"/bin/true\"]\nuser = \"65534\"\n")]).unwrap();
        assert_eq!(c.services[0].credentials.clone().unwrap().display, "nobody");
    }

    /// Every row of the first table of docs/bad-input.md: the input as
    /// `svc.toml` gives exactly the message shown.
    #[test]
    fn bad_input_catalogue_matches() {
        let doc = include_str!("../../docs/bad-input.md");
        let table = doc
            .split("## Service file contents")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        let mut rows = 0;
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let (input, message) = line
                .strip_prefix("| `")
                .and_then(|l| l.strip_suffix(" |"))
                .and_then(|l| l.split_once("` | "))
                .unwrap_or_else(|| panic!("bad row: {line}"));
            let text = input.replace("\\n", "\n").replace("\\\\", "\\");
            let got = error(&text);
            assert_eq!(got, message, "for {text:?}");
            rows += 1;
        }
        assert!(rows >= 50, "only {rows} rows read");
    }

    #[test]
    fn every_unknown_key_and_wrong_type_of_a_file_is_reported() {
        let errs = load(&[(
            "svc.toml",
            "comand = [\"x\"]\nrestart_limit = \"ten\"\nreqiures = [\"db\"]\n[ready]\ntimout = \"5s\"\n",
        )])
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "svc.toml:1: unknown key `comand`: did you mean `command`?",
                "svc.toml:2: `restart_limit` must be an integer, not the string \"ten\"",
                "svc.toml:3: unknown key `reqiures`: did you mean `requires`?",
                "svc.toml:5: unknown key `ready.timout`: did you mean `ready.timeout`?",
            ],
        );
    }

    #[test]
    fn all_errors_of_all_files_are_reported_together() {
        let errs = load(&[
            ("a.toml", "run = \"x\"\nrequires = [\"b\"]\n"),
            ("b.toml", "run = \"x\"\nrequires = [\"c\"]\n"),
            ("c.toml", "run = \"x\"\nrequires = [\"a\"]\n"),
            ("d.toml", "bogus = 1\n"),
            (
                "e.toml",
                "run = \"x\"\nuser = \"ghost\"\ngroup = \"ghosts\"\n",
            ),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("d.toml:1: unknown key `bogus`")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("e.toml:2: unknown user")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("e.toml:3: unknown group")),
            "{errs:?}"
        );
        let cycle = errs.iter().find(|e| e.contains("cycle")).unwrap();
        assert!(
            cycle.starts_with("a.toml:2: dependency cycle: a -> b -> c -> a"),
            "{cycle}"
        );
        assert!(
            cycle.contains("b.toml") && cycle.contains("c.toml"),
            "{cycle}"
        );
    }

    #[test]
    fn a_crontab_saved_as_toml_is_named() {
        let crontab = "MAILTO=\"\"\n# backups\n30 3 * * * root /usr/local/bin/backup\n";
        let errs = load(&[("backup.toml", crontab)]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(
                "this looks like a crontab, not a service file: run `corral import crontab"
            ) && errs[0].contains("backup.toml -o DIR`"),
            "{errs:?}"
        );
        // A broken service file is still told what is wrong with its TOML.
        let errs = load(&[("web.toml", "run = \"x\"\nrestart = \n")]).unwrap_err();
        assert!(!errs[0].contains("crontab"), "{errs:?}");
    }

    #[test]
    fn a_supervisord_conf_saved_as_toml_is_named() {
        // Not TOML at all ([program:web] is no table name) ...
        let ini = "[program:web]\ncommand=/usr/bin/web --port 80 ; comment\n";
        // ... and TOML whose keys are all unknown.
        let parses = "[supervisord]\nnodaemon=true\n";
        for text in [ini, parses] {
            let errs = load(&[("web.toml", text)]).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].starts_with("web.toml: this looks like a supervisord configuration, not a service file: run `corral import supervisord web.toml -o DIR`"),
                "{errs:?}"
            );
        }
        // A service file with an unknown table is told about its key.
        let errs = load(&[("web.toml", "run = \"x\"\n[program]\nx = 1\n")]).unwrap_err();
        assert!(!errs[0].contains("supervisord"), "{errs:?}");
    }

    #[test]
    fn file_names_and_stray_files() {
        let errs = load(&[("bad name.toml", "run = \"x\"\n")]).unwrap_err();
        assert!(
            errs[0].contains("`bad name` is not a valid service name"),
            "{errs:?}"
        );
        let errs = load(&[("-x.toml", "run = \"x\"\n")]).unwrap_err();
        assert!(errs[0].contains("not a valid service name"), "{errs:?}");
        let c = load(&[
            ("web.toml", "run = \"x\"\n"),
            ("README", "hi"),
            ("web.tml", "run = 1"),
            (".hidden", ""),
        ])
        .unwrap();
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("web.tml: ignored")));
        let c = load(&[
            ("app.toml", "run = \"x\"\nrequires = [\"dbg\"]\n"),
            ("dbg.toml", "run = \"x\"\nenabled = false\n"),
        ])
        .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains(".toml:2: app requires dbg, which is disabled")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn non_utf8_and_unreadable_files() {
        let dir = Dir::new(&[]);
        std::fs::write(dir.0.join("bin.toml"), b"run = \"x\"\n\xff\n").unwrap();
        std::os::unix::fs::symlink(dir.0.join("loop.toml"), dir.0.join("loop.toml")).unwrap();
        let errs: Vec<String> = load_dir_with(&dir.0, Missing::Error, &users())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.ends_with("bin.toml:2: not valid UTF-8: TOML files must be UTF-8")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("loop.toml: cannot read")),
            "{errs:?}"
        );
    }

    /// The listing's own file types decide what is a directory, but a
    /// link (a ConfigMap mount is made of them) is followed: to a service
    /// file it is a service file, to a runit directory a runit service.
    #[test]
    fn links_in_the_services_directory_are_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Dir::new(&[]);
        let real = Dir::new(&[("app.toml", "run = \"sleep 1\"\n")]);
        let run = real.0.join("web/run");
        std::fs::create_dir(real.0.join("web")).unwrap();
        std::fs::write(&run, "#!/bin/sh\nexec sleep 1\n").unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.0.join("plain")).unwrap();
        std::fs::copy(&run, dir.0.join("plain/run")).unwrap();
        std::os::unix::fs::symlink(real.0.join("app.toml"), dir.0.join("app.toml")).unwrap();
        std::os::unix::fs::symlink(real.0.join("web"), dir.0.join("web")).unwrap();
        let c = load_dir_with(&dir.0, Missing::Error, &users()).unwrap();
        let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["app", "plain", "web"], "{:?}", c.warnings);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn env_is_capped_in_entries() {
        let mut text = String::from("run = \"x\"\n[env]\n");
        for i in 0..=model::MAX_ENV_ENTRIES {
            text.push_str(&format!("V{i} = \"x\"\n"));
        }
        let e = error(&text);
        assert!(
            e.contains("env has 4097 entries") && e.contains("at most 4096"),
            "{e}"
        );
    }

    #[test]
    fn fifos_devices_and_huge_service_files_are_errors_not_hangs() {
        let dir = Dir::new(&[]);
        nix::unistd::mkfifo(
            &dir.0.join("fifo.toml"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.0.join("zero.toml")).unwrap();
        std::fs::write(
            dir.0.join("huge.toml"),
            vec![b'#'; MAX_SERVICE_FILE as usize + 1],
        )
        .unwrap();
        let errs: Vec<String> = load_dir_with(&dir.0, Missing::Error, &users())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        for want in [
            "fifo.toml: cannot read: is a FIFO, not a regular file",
            "zero.toml: cannot read: is a device, not a regular file",
            "huge.toml: cannot read: is larger than 1048576 bytes",
        ] {
            assert!(errs.iter().any(|e| e.ends_with(want)), "{want}: {errs:?}");
        }
    }

    #[test]
    fn missing_directory_is_empty_unless_named() {
        let missing = std::env::temp_dir().join("corral-config-does-not-exist");
        assert!(
            load_dir_with(&missing, Missing::Empty, &users())
                .unwrap()
                .services
                .is_empty()
        );
        let errs = load_dir_with(&missing, Missing::Error, &users()).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("cannot read the services directory")
        );
    }
}
