//! `corral import supervisord`: a supervisord.conf (and what its
//! `[include]` names) as corral service files, one per process. Pure:
//! files are read through `Host`, so tests give them as text.
//!
//! Values are read as supervisord reads them (`ini.rs`, `values.rs`), so
//! every `%(name)s` expands as it would have. `%(ENV_X)s` in a command is
//! left for the shell at run time, since supervisord read the variable
//! from the container's environment when it started; elsewhere it is
//! expanded now, and the file says so. What corral cannot carry over is a
//! comment in the file saying why.

mod values;

use std::collections::BTreeMap;

use super::ini::{self, Entry};
use super::{Imported, toml_string};
use values::Val;

/// The files an `[include]` pattern matches: see `Host::include`.
pub type Include<'a> = dyn FnMut(&str) -> Result<Vec<(String, String)>, String> + 'a;

/// What the import reads besides the file itself.
pub struct Host<'a> {
    /// The environment supervisord would have started with.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// This machine's name, for `%(host_node_name)s`.
    pub node: String,
    /// The files an `[include]` pattern (absolute) matches, sorted, as
    /// (path, text); an error says why they cannot be read.
    pub include: &'a mut Include<'a>,
}

/// A key's value and where it was written.
#[derive(Debug, Clone)]
struct Value {
    text: String,
    line: usize,
    file: usize,
}

/// A section with every part of the same name merged, later keys
/// winning, as ConfigParser merges them.
#[derive(Debug, Clone)]
struct Section {
    name: String,
    line: usize,
    file: usize,
    keys: BTreeMap<String, Value>,
    /// Keys in the order first written, for comments.
    order: Vec<String>,
}

/// The files read: shown path and directory (for `%(here)s`).
struct Files {
    paths: Vec<(String, String)>,
}

impl Files {
    fn at(&self, file: usize, line: usize) -> String {
        format!(
            "{}:{line}",
            self.paths.get(file).map_or("", |p| p.0.as_str())
        )
    }

    /// The directory of file number `file`, for `%(here)s`.
    fn dir(&self, file: usize) -> String {
        self.paths
            .get(file)
            .map_or("/", |p| p.1.as_str())
            .to_string()
    }
}

/// The sections that make a file supervisord's.
const KNOWN: [&str; 6] = [
    "supervisord",
    "include",
    "unix_http_server",
    "inet_http_server",
    "supervisorctl",
    "DEFAULT",
];
const KNOWN_PREFIXES: [&str; 5] = [
    "program:",
    "group:",
    "eventlistener:",
    "fcgi-program:",
    "rpcinterface:",
];

fn is_supervisord_section(name: &str) -> bool {
    KNOWN.contains(&name) || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `text` looks like a supervisord configuration: an INI file with
/// a `[supervisord]`, `[program:x]` or other supervisord section. For the
/// error on one saved as `x.toml`.
pub fn looks_like(text: &str) -> bool {
    ini::parse(text).is_ok_and(|s| {
        s.iter()
            .any(|s| s.name != "DEFAULT" && is_supervisord_section(&s.name))
    })
}

/// Converts the supervisord configuration `text`, read from `path` in the
/// absolute directory `dir`. Errors are `path:line: ...`.
pub fn import(path: &str, dir: &str, text: &str, host: &mut Host) -> Result<Imported, Vec<String>> {
    let mut out = Imported::default();
    let mut files = Files {
        paths: vec![(path.to_string(), dir.to_string())],
    };
    let parsed = ini::parse(text).map_err(|e| {
        // Without one supervisord header it is some other kind of file:
        // say that, at its first bad line, rather than list every line.
        let ours = text
            .lines()
            .filter_map(|l| ini::header(l.trim()))
            .any(is_supervisord_section);
        match e.first() {
            Some((line, why)) if !ours => vec![format!(
                "{path}:{line}: not a supervisord configuration: {why}"
            )],
            _ => e
                .into_iter()
                .map(|(line, why)| format!("{path}:{line}: {why}"))
                .collect(),
        }
    })?;
    if !parsed.iter().any(|s| is_supervisord_section(&s.name)) {
        let names: Vec<String> = parsed.iter().map(|s| format!("[{}]", s.name)).collect();
        return Err(vec![format!(
            "{path}: not a supervisord configuration: it has no [supervisord], [program:x] or [include] section{}",
            if names.is_empty() {
                String::new()
            } else {
                format!(" (only {})", names.join(", "))
            }
        )]);
    }
    let mut all: Vec<(usize, ini::Section)> = parsed.into_iter().map(|s| (0, s)).collect();
    let (env, node) = (host.env, host.node.clone());
    let env_of = |name: &str| name.strip_prefix("ENV_").and_then(env);
    // [include]: read before anything else, as supervisord does.
    if let Some(include) = merged(&all, "include") {
        let Some(patterns) = include.keys.get("files") else {
            return Err(vec![format!(
                "{}: [include] has no `files` line: name the files, e.g. files = conf.d/*.conf",
                files.at(0, include.line)
            )]);
        };
        let expand = |name: &str| match name {
            "here" => Some(Val::Str(dir.to_string())),
            "host_node_name" => Some(Val::Str(node.clone())),
            _ => env_of(name).map(Val::Str),
        };
        let list = values::expand_text(&patterns.text, &expand)
            .map_err(|e| vec![format!("{}: files: {e}", files.at(0, patterns.line))])?;
        let mut found = Vec::new();
        for pattern in list.split_whitespace() {
            let absolute = if pattern.starts_with('/') {
                pattern.to_string()
            } else {
                format!("{}/{pattern}", dir.trim_end_matches('/'))
            };
            match (host.include)(&absolute) {
                Ok(matched) if matched.is_empty() => out.notes.push(format!(
                    "{}: [include] {absolute}: no file matches (supervisord warns and goes on)",
                    files.at(0, patterns.line)
                )),
                Ok(matched) => found.extend(matched),
                Err(e) => {
                    return Err(vec![format!(
                        "{}: [include] {absolute}: {e}",
                        files.at(0, patterns.line)
                    )]);
                }
            }
        }
        let mut errors = Vec::new();
        for (shown, text) in found {
            let parent = shown
                .rsplit_once('/')
                .map_or(".", |(d, _)| if d.is_empty() { "/" } else { d })
                .to_string();
            files.paths.push((shown.clone(), parent));
            let file = files.paths.len() - 1;
            match ini::parse(&text) {
                Ok(sections) => {
                    for s in sections {
                        if s.name == "include" {
                            out.notes.push(format!(
                                "{shown}:{}: [include] in an included file: supervisord does not follow it, and neither does this import",
                                s.line
                            ));
                            continue;
                        }
                        all.push((file, s));
                    }
                }
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(line, why)| format!("{shown}:{line}: {why}")),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    let sections = merge_all(&all);
    let defaults = sections.iter().find(|s| s.name == "DEFAULT").cloned();
    let with_defaults = |s: &Section| -> Section {
        let mut s = s.clone();
        if let Some(d) = &defaults {
            for (k, v) in &d.keys {
                s.keys.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        s
    };
    let mut errors = Vec::new();
    // [supervisord]: the environment every program gets, and its user.
    let mut global_env: Vec<(String, String)> = Vec::new();
    let mut global_user = None;
    if let Some(sup) = sections.iter().find(|s| s.name == "supervisord") {
        let sup = with_defaults(sup);
        if let Some(v) = sup.keys.get("environment") {
            let here = files.dir(v.file);
            let lookup = |name: &str| match name {
                "here" => Some(Val::Str(here.clone())),
                "host_node_name" => Some(Val::Str(node.clone())),
                _ => env_of(name).map(Val::Str),
            };
            match values::expand_text(&v.text, &lookup).and_then(|t| values::environment(&t)) {
                Ok(pairs) => global_env = pairs,
                Err(e) => errors.push(format!("{}: {e}", files.at(v.file, v.line))),
            }
        }
        global_user = sup.keys.get("user").map(|v| v.text.clone());
        let ignored: Vec<&str> = sup
            .order
            .iter()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "environment" | "user"))
            .collect();
        if !ignored.is_empty() {
            out.notes.push(format!(
                "{}: [supervisord] {}: supervisord's own settings, not the programs'; corral runs in the foreground and logs to the container (its settings: README, Running corral)",
                files.at(sup.file, sup.line),
                ignored.join(", ")
            ));
        }
    }
    // Groups: which program is in which, and the group's priority.
    let mut group_of: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut groups = Vec::new();
    for g in sections.iter().filter(|s| s.name.starts_with("group:")) {
        let g = with_defaults(g);
        let name = g.name["group:".len()..].trim().to_string();
        let priority = match g.keys.get("priority").map(|v| values::integer(&v.text)) {
            None => 999,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                errors.push(format!("{}: priority: {e}", files.at(g.file, g.line)));
                999
            }
        };
        let members: Vec<String> = g
            .keys
            .get("programs")
            .map(|v| {
                v.text
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for m in &members {
            if !sections.iter().any(|s| s.name == format!("program:{m}")) {
                errors.push(format!(
                    "{}: [group:{name}] names `{m}`, which has no [program:{m}] section",
                    files.at(g.file, g.line)
                ));
            }
            group_of.insert(m.clone(), (name.clone(), priority));
        }
        groups.push((name, files.at(g.file, g.line)));
    }
    for s in &sections {
        let at = files.at(s.file, s.line);
        let note = match s.name.as_str() {
            n if n.starts_with("program:") || n.starts_with("group:") => continue,
            "supervisord" | "include" | "DEFAULT" => continue,
            "unix_http_server" | "inet_http_server" | "supervisorctl" => {
                "supervisorctl's server and client: svctl talks to corral's control socket instead (README, svctl)".to_string()
            }
            n if n.starts_with("rpcinterface:") => {
                "an XML-RPC plugin: corral has no XML-RPC interface (svctl, and the metrics endpoint)".to_string()
            }
            n if n.starts_with("eventlistener:") => {
                "not imported: corral does not speak supervisord's event listener protocol; `svctl events` streams corral's events (README, Events)".to_string()
            }
            n if n.starts_with("fcgi-program:") => {
                "not imported: corral does not hold FastCGI sockets; run the program as a service that binds its own socket".to_string()
            }
            _ => "not a supervisord section; supervisord ignores it, and so does this import".to_string(),
        };
        out.notes.push(format!("{at}: [{}]: {note}", s.name));
    }
    let shared = Shared {
        files: &files,
        env,
        node: &node,
        global_env: &global_env,
        global_user: global_user.as_deref(),
    };
    let mut processes = Vec::new();
    for s in sections.iter().filter(|s| s.name.starts_with("program:")) {
        let s = with_defaults(s);
        let program = s.name["program:".len()..].trim().to_string();
        let group = group_of.get(&program).cloned();
        match program_processes(&shared, &s, &program, group) {
            Ok(p) => processes.extend(p),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if processes.is_empty() {
        return Err(vec![format!(
            "{path}: no [program:x] section: nothing to import"
        )]);
    }
    for (i, p) in processes.iter().enumerate() {
        if let Some(first) = processes.iter().take(i).find(|q| q.name == p.name) {
            errors.push(format!(
                "{}: process name `{}` is also {}'s: corral needs one name per service; change process_name",
                p.at, p.name, first.at
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (group, at) in &groups {
        let members: Vec<&str> = processes
            .iter()
            .filter(|p| p.group.as_ref() == Some(group))
            .map(|p| p.name.as_str())
            .collect();
        out.notes.push(format!(
            "{at}: [group:{group}]: corral has no groups; its processes are services of their own (svctl restart {} does what supervisorctl restart {group}:* did)",
            members.join(" ")
        ));
    }
    for p in &processes {
        let text = render(p, &processes);
        out.files.push((p.name.clone(), text));
    }
    Ok(out)
}

/// Every section of each name, merged in the order first seen.
fn merge_all(all: &[(usize, ini::Section)]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for (file, s) in all {
        if !out.iter().any(|m| m.name == s.name) {
            out.push(Section {
                name: s.name.clone(),
                line: s.line,
                file: *file,
                keys: BTreeMap::new(),
                order: Vec::new(),
            });
        }
        let Some(m) = out.iter_mut().find(|m| m.name == s.name) else {
            continue;
        };
        for Entry { key, value, line } in &s.entries {
            if !m.order.contains(key) {
                m.order.push(key.clone());
            }
            m.keys.insert(
                key.clone(),
                Value {
                    text: value.clone(),
                    line: *line,
                    file: *file,
                },
            );
        }
    }
    out
}

fn merged(all: &[(usize, ini::Section)], name: &str) -> Option<Section> {
    merge_all(all).into_iter().find(|s| s.name == name)
}

/// Where a process's output went in supervisord.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// AUTO: a temporary file under childlogdir.
    Auto {
        given: bool,
    },
    None,
    Syslog,
    /// The container's own stdout or stderr (`/dev/stdout`, `/dev/fd/2`).
    Console(String),
    File(String),
}

/// One stream's log settings: where, `maxbytes`, `backups`.
type StreamLog = (Target, u64, i64);

/// One process: a service file's worth.
struct Process {
    name: String,
    at: String,
    program: String,
    /// `(group's priority, priority)`: supervisord's start order.
    order: (i64, i64),
    group: Option<String>,
    command: Command,
    user: Option<String>,
    directory: Option<String>,
    env: Vec<(String, String)>,
    autostart: bool,
    autorestart: String,
    exitcodes: Vec<i32>,
    startsecs: i64,
    startretries: i64,
    stopsignal: Option<String>,
    stopwaitsecs: i64,
    log: Option<(String, u64, i64)>,
    /// Comments on what did not map, and why.
    comments: Vec<String>,
}

enum Command {
    Argv(Vec<String>),
    /// A shell line, for the variables it reads at run time and a umask.
    Script {
        script: String,
        vars: Vec<String>,
        umask: bool,
    },
}

/// What every process of the file shares.
struct Shared<'a> {
    files: &'a Files,
    env: &'a dyn Fn(&str) -> Option<String>,
    node: &'a str,
    global_env: &'a [(String, String)],
    global_user: Option<&'a str>,
}

/// Reads one process's keys as supervisord would: expanded with its
/// names, errors and comments collected.
struct Reader<'a> {
    shared: &'a Shared<'a>,
    s: &'a Section,
    program: &'a str,
    group_name: String,
    num: i64,
    numprocs: i64,
    /// Its own `environment`, once read: ENV_ names for the keys after it.
    program_env: Vec<(String, String)>,
    errors: Vec<String>,
    comments: Vec<String>,
}

impl Reader<'_> {
    /// Where `key` was written (the section's line when it was not).
    fn at(&self, key: &str) -> String {
        match self.s.keys.get(key) {
            Some(v) => self.shared.files.at(v.file, v.line),
            None => self.shared.files.at(self.s.file, self.s.line),
        }
    }

    fn lookup(&self, name: &str, file: usize) -> Option<Val> {
        let found = |pairs: &[(String, String)], var: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
        };
        Some(match name {
            "here" => Val::Str(self.shared.files.dir(file)),
            "program_name" => Val::Str(self.program.to_string()),
            "group_name" => Val::Str(self.group_name.clone()),
            "host_node_name" => Val::Str(self.shared.node.to_string()),
            "process_num" => Val::Int(self.num),
            "numprocs" => Val::Int(self.numprocs),
            _ => {
                let var = name.strip_prefix("ENV_")?;
                Val::Str(
                    found(&self.program_env, var)
                        .or_else(|| found(self.shared.global_env, var))
                        .or_else(|| (self.shared.env)(var))?,
                )
            }
        })
    }

    fn fail(&mut self, key: &str, why: String) {
        let at = self.at(key);
        self.errors.push(format!("{at}: {key}: {why}"));
    }

    /// `key`'s value, expanded now (with a comment when that read the
    /// environment, which supervisord read when it started).
    fn get(&mut self, key: &str) -> Option<String> {
        let v = self.s.keys.get(key)?;
        if v.text.contains("%(ENV_") {
            self.comments.push(format!(
                "{key}: %(ENV_...)s was expanded by this import; corral reads {key} as written"
            ));
        }
        match values::expand_text(&v.text, &|n| self.lookup(n, v.file)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(key, e);
                None
            }
        }
    }

    fn parsed<T>(&mut self, key: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> T {
        match self.get(key) {
            None => default,
            Some(t) => parse(&t).unwrap_or_else(|e| {
                self.fail(key, e);
                default
            }),
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        self.parsed(key, default, values::boolean)
    }

    fn integer(&mut self, key: &str, default: i64, max: i64) -> i64 {
        let n = self.parsed(key, default, values::integer);
        if !(0..=max).contains(&n) {
            self.fail(key, format!("{n}: give 0 to {max}"));
            return default;
        }
        n
    }

    /// The command, split; `%(ENV_X)s` left for run time.
    fn command(&mut self) -> Option<Vec<values::Word>> {
        let v = self.s.keys.get("command")?;
        let words = values::expand(&v.text, &|n| self.lookup(n, v.file), true)
            .and_then(|p| values::split_command(&p));
        match words {
            Ok(w) if w.is_empty() => {
                self.fail("command", "it is empty".into());
                None
            }
            Ok(w) => Some(w),
            Err(e) => {
                self.fail("command", e);
                None
            }
        }
    }

    /// One stream's `*_logfile`, `*_logfile_maxbytes`, `*_logfile_backups`.
    fn stream_log(&mut self, stream: &str) -> StreamLog {
        let key = format!("{stream}_logfile");
        let target = match self.get(&key).map(|v| v.trim().to_string()) {
            None => Target::Auto { given: false },
            Some(v) => match v.to_lowercase().as_str() {
                "auto" => Target::Auto { given: true },
                "none" | "off" => Target::None,
                "syslog" => Target::Syslog,
                "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" | "/dev/stderr" | "/dev/fd/2"
                | "/proc/self/fd/2" => Target::Console(v),
                _ if !v.starts_with('/') => {
                    self.fail(&key, format!("`{v}` is relative: give the absolute path"));
                    Target::None
                }
                _ => Target::File(v),
            },
        };
        let maxbytes = self.parsed(
            &format!("{stream}_logfile_maxbytes"),
            50 << 20,
            values::byte_size,
        );
        let backups = self.integer(&format!("{stream}_logfile_backups"), 10, 1_000_000);
        (target, maxbytes, backups)
    }
}

fn program_processes(
    shared: &Shared,
    s: &Section,
    program: &str,
    group: Option<(String, i64)>,
) -> Result<Vec<Process>, Vec<String>> {
    let at = shared.files.at(s.file, s.line);
    let group_name = group.as_ref().map_or(program.to_string(), |g| g.0.clone());
    let mut r = Reader {
        shared,
        s,
        program,
        group_name: group_name.clone(),
        num: 0,
        numprocs: 1,
        program_env: Vec::new(),
        errors: Vec::new(),
        comments: Vec::new(),
    };
    let numprocs = r.parsed("numprocs", 1, values::integer);
    let numprocs_start = r.parsed("numprocs_start", 0, values::integer);
    let priority = r.parsed("priority", 999, values::integer);
    if !(1..=10_000).contains(&numprocs) {
        r.fail("numprocs", format!("{numprocs}: give 1 to 10000"));
    }
    let process_name = s
        .keys
        .get("process_name")
        .map_or("%(program_name)s".to_string(), |v| v.text.clone());
    if numprocs > 1 && !process_name.contains("%(process_num)") {
        r.errors.push(format!(
            "{at}: numprocs = {numprocs} needs %(process_num) in process_name (supervisord refuses it too), e.g. process_name = %(program_name)s_%(process_num)02d"
        ));
    }
    if !s.keys.contains_key("command") {
        r.errors.push(format!(
            "{at}: [program:{program}] has no command (supervisord refuses it too)"
        ));
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for num in numprocs_start..numprocs_start.saturating_add(numprocs) {
        r.num = num;
        r.numprocs = numprocs;
        r.program_env.clear();
        r.comments.clear();
        match process(&mut r, &process_name, priority, group.as_ref()) {
            Some(p) if r.errors.is_empty() => out.push(p),
            _ => errors.append(&mut r.errors),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Process number `r.num` of a program.
fn process(
    r: &mut Reader,
    process_name: &str,
    priority: i64,
    group: Option<&(String, i64)>,
) -> Option<Process> {
    let at = r.at("");
    // environment= first: its names are ENV_ names for every key after it.
    if let Some(v) = r.s.keys.get("environment") {
        let read = values::expand_text(&v.text, &|n| r.lookup(n, v.file))
            .and_then(|t| values::environment(&t));
        match read {
            Ok(pairs) => r.program_env = pairs,
            Err(e) => r.fail("environment", e),
        }
        if v.text.contains("%(ENV_") {
            r.comments.push(
                "environment: %(ENV_...)s was expanded by this import; corral sets env as written"
                    .to_string(),
            );
        }
    }
    let file = r.s.keys.get("process_name").map_or(r.s.file, |v| v.file);
    let name = match values::expand_text(process_name, &|n| r.lookup(n, file)) {
        Ok(n) => n.trim().to_string(),
        Err(e) => {
            r.fail("process_name", e);
            String::new()
        }
    };
    if let Err(e) = crate::config::check_name(&name) {
        r.errors.push(format!(
            "{at}: process name `{name}` cannot be a corral service name ({e}): set process_name"
        ));
    }
    let words = r.command();
    let umask = r.get("umask").map(|m| m.trim().to_string());
    let command = words.map(|words| command_of(&words, umask.as_deref()));
    let autostart = r.boolean("autostart", true);
    let autorestart = match r.get("autorestart").map(|t| t.trim().to_lowercase()) {
        None => "unexpected".to_string(),
        Some(t) if t == "unexpected" => t,
        Some(t) => match values::boolean(&t) {
            Ok(b) => b.to_string(),
            Err(_) => {
                r.fail(
                    "autorestart",
                    format!("`{t}`: supervisord reads true, false or unexpected"),
                );
                "unexpected".to_string()
            }
        },
    };
    let exitcodes = r.parsed("exitcodes", vec![0], values::exit_codes);
    let startsecs = r.integer("startsecs", 1, 86_400);
    let startretries = r.integer("startretries", 3, 1_000_000);
    let stopwaitsecs = r.integer("stopwaitsecs", 10, 86_400);
    let stopsignal = r
        .get("stopsignal")
        .and_then(|t| values::signal(&t).map_err(|e| r.fail("stopsignal", e)).ok());
    let stopasgroup = r.boolean("stopasgroup", false);
    let killasgroup = r.boolean("killasgroup", stopasgroup);
    let given = |k: &str| r.s.keys.contains_key(k);
    if (given("stopasgroup") || given("killasgroup")) && !(stopasgroup && killasgroup) {
        r.comments.push(format!(
            "stopasgroup = {stopasgroup}, killasgroup = {killasgroup}: corral always signals the whole process group (stop_signal, then SIGKILL)"
        ));
    }
    let user = r
        .get("user")
        .map(|u| u.trim().to_string())
        .or_else(|| r.shared.global_user.map(str::to_string));
    let directory = r.get("directory").map(|d| d.trim().to_string());
    if let Some(d) = &directory
        && !d.starts_with('/')
    {
        r.fail(
            "directory",
            format!("`{d}` is relative: supervisord resolved it against its own working directory; give the absolute path"),
        );
    }
    let redirect = r.boolean("redirect_stderr", false);
    let stdout = r.stream_log("stdout");
    let stderr = r.stream_log("stderr");
    let stderr_given = given("stderr_logfile");
    let log = log_mapping(&stdout, &stderr, redirect, stderr_given, &mut r.comments);
    for (key, why) in UNMAPPED {
        if let Some(v) = r.s.keys.get(key) {
            r.comments.push(format!("{key} = {}: {why}", v.text));
        }
    }
    for key in &r.s.order {
        if let Some(v) = r.s.keys.get(key)
            && !PROGRAM_KEYS.contains(&key.as_str())
        {
            r.comments.push(format!(
                "{key} = {}: not a supervisord program key; left out",
                v.text
            ));
        }
    }
    if autorestart == "false" && startretries > 0 && startsecs > 0 {
        r.comments.push(format!(
            "autorestart = false: supervisord still retried a start that exited within startsecs ({startsecs} s), up to startretries ({startretries}) times; corral's restart = \"never\" does not"
        ));
    }
    // As supervisord's children get it: its markers, then the
    // [supervisord] environment, then the program's.
    let mut env: Vec<(String, String)> = vec![
        ("SUPERVISOR_ENABLED".into(), "1".into()),
        ("SUPERVISOR_PROCESS_NAME".into(), name.clone()),
        ("SUPERVISOR_GROUP_NAME".into(), r.group_name.clone()),
    ];
    for (k, v) in r.shared.global_env.iter().chain(r.program_env.iter()) {
        match env.iter_mut().find(|(have, _)| have == k) {
            Some(pair) => pair.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    Some(Process {
        name,
        at,
        program: r.program.to_string(),
        order: (group.map_or(priority, |g| g.1), priority),
        group: group.map(|g| g.0.clone()),
        command: command?,
        user,
        directory,
        env,
        autostart,
        autorestart,
        exitcodes,
        startsecs,
        startretries,
        stopsignal,
        stopwaitsecs,
        log,
        comments: r.comments.clone(),
    })
}

/// The command as corral runs it: the argv as it is, or a shell line when
/// a variable waits for run time or a umask must be set first.
fn command_of(words: &[values::Word], umask: Option<&str>) -> Command {
    let plain = values::plain_words(words);
    if let (Some(argv), None) = (&plain, umask) {
        return Command::Argv(argv.clone());
    }
    let mut script = String::new();
    if let Some(m) = umask {
        script.push_str(&format!("umask {}; ", values::shell_quote(m)));
    }
    let split_var = words
        .iter()
        .flatten()
        .any(|s| matches!(s, values::Seg::Var { quoted: false, .. }));
    if split_var {
        // A value split into words is not globbed: supervisord's split
        // did not glob either.
        script.push_str("set -f; ");
    }
    script.push_str("exec ");
    script.push_str(&values::shell_words(words));
    let mut vars: Vec<String> = Vec::new();
    for s in words.iter().flatten() {
        if let values::Seg::Var { name, .. } = s
            && !vars.contains(name)
        {
            vars.push(name.clone());
        }
    }
    Command::Script {
        script,
        vars,
        umask: umask.is_some(),
    }
}

/// Keys corral has nothing for, and why.
const UNMAPPED: [(&str, &str); 7] = [
    (
        "stdout_capture_maxbytes",
        "capture mode feeds supervisord's event listeners; corral has none (svctl events streams corral's own events)",
    ),
    (
        "stderr_capture_maxbytes",
        "capture mode feeds supervisord's event listeners; corral has none",
    ),
    (
        "stdout_events_enabled",
        "events for supervisord's event listeners; corral has none (svctl events)",
    ),
    (
        "stderr_events_enabled",
        "events for supervisord's event listeners; corral has none",
    ),
    (
        "stdout_syslog",
        "corral sends output to the container log, not to syslog",
    ),
    (
        "stderr_syslog",
        "corral sends output to the container log, not to syslog",
    ),
    (
        "serverurl",
        "corral has no XML-RPC server; svctl talks to its control socket",
    ),
];

/// The keys of a `[program:x]` section supervisord knows.
const PROGRAM_KEYS: [&str; 32] = [
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "autorestart",
    "startsecs",
    "startretries",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
    "environment",
    "directory",
    "umask",
    "serverurl",
];

/// corral's `[log] file` (path, max size, backups) for the two streams'
/// targets; corral writes both streams to one file and keeps them on the
/// console, so what differs is a comment.
fn log_mapping(
    stdout: &(Target, u64, i64),
    stderr: &(Target, u64, i64),
    redirect: bool,
    stderr_given: bool,
    comments: &mut Vec<String>,
) -> Option<(String, u64, i64)> {
    let describe = |stream: &str, t: &Target, comments: &mut Vec<String>| {
        match t {
        Target::Auto { given: true } => comments.push(format!(
            "{stream}_logfile = AUTO: supervisord kept it in a file under childlogdir; corral sends it to the container log and keeps the last lines for svctl logs"
        )),
        Target::None => comments.push(format!(
            "{stream}_logfile = NONE: supervisord discarded it; corral sends it to the container log"
        )),
        Target::Syslog => comments.push(format!(
            "{stream}_logfile = syslog: corral sends it to the container log, not to syslog"
        )),
        Target::Console(dev) if (stream == "stdout") != (dev.ends_with('1') || dev.ends_with("stdout")) => {
            comments.push(format!(
                "{stream}_logfile = {dev}: corral keeps the service's {stream} on its own {stream}"
            ))
        }
        _ => {}
    }
    };
    describe("stdout", &stdout.0, comments);
    if redirect {
        if stderr_given {
            comments.push(
                "redirect_stderr = true: stderr_logfile is not used (as in supervisord)"
                    .to_string(),
            );
        }
        comments.push(
            "redirect_stderr = true: stderr goes where stdout goes ([log] file); on the console corral keeps it on its stderr".to_string(),
        );
    } else {
        describe("stderr", &stderr.0, comments);
    }
    let file = |t: &(Target, u64, i64)| match &t.0 {
        Target::File(p) => Some((p.clone(), t.1, t.2)),
        _ => None,
    };
    let out_file = file(stdout);
    let err_file = if redirect { None } else { file(stderr) };
    match (out_file, err_file) {
        (Some(o), Some(e)) if o.0 != e.0 => {
            comments.push(format!(
                "stderr_logfile = {}: corral writes stdout and stderr to one file, [log] file = {}",
                e.0, o.0
            ));
            Some(o)
        }
        (Some(o), _) => Some(o),
        (None, Some(e)) => {
            comments.push(format!(
                "stderr_logfile = {}: corral writes stdout there too (one file for both streams)",
                e.0
            ));
            Some(e)
        }
        (None, None) => None,
    }
}

/// The service file of one process.
fn render(p: &Process, all: &[Process]) -> String {
    let mut t = format!(
        "# Imported from {} [program:{}] by corral import supervisord.\n",
        p.at, p.program
    );
    if let Some(g) = &p.group {
        t.push_str(&format!(
            "# In [group:{g}] (supervisorctl's {g}:{}).\n",
            p.name
        ));
    }
    match &p.command {
        Command::Argv(argv) => {
            let list: Vec<String> = argv.iter().map(|a| toml_string(a)).collect();
            t.push_str(&format!("command = [{}]\n", list.join(", ")));
        }
        Command::Script {
            script,
            vars,
            umask,
        } => {
            if !vars.is_empty() {
                let names: Vec<String> = vars.iter().map(|v| format!("%(ENV_{v})s")).collect();
                t.push_str(&format!(
                    "# {}: read when the service starts, as supervisord read it when it started;\n# the shell fails the start when it is unset, as supervisord refused to start.\n",
                    names.join(", ")
                ));
            }
            if *umask {
                t.push_str("# umask: set by the shell before the program starts.\n");
            }
            t.push_str(&format!("run = {}\n", toml_string(script)));
        }
    }
    if let Some(u) = &p.user {
        t.push_str(&format!("user = {}\n", toml_string(u)));
    }
    if let Some(d) = &p.directory {
        t.push_str(&format!("working_dir = {}\n", toml_string(d)));
    }
    if !p.autostart {
        t.push_str("enabled = false  # autostart = false: svctl start runs it\n");
    }
    let policy = match (p.autorestart.as_str(), p.exitcodes.is_empty()) {
        ("true", _) => "always",
        ("false", _) => "never",
        // No exit code is expected: every exit restarts.
        (_, true) => "always",
        _ => "on-failure",
    };
    t.push_str(&format!(
        "restart = \"{policy}\"  # autorestart = {}\n",
        p.autorestart
    ));
    if !p.exitcodes.is_empty() && p.exitcodes != [0] {
        let codes: Vec<String> = p.exitcodes.iter().map(i32::to_string).collect();
        t.push_str(&format!(
            "success_exit_codes = [{}]  # exitcodes\n",
            codes.join(", ")
        ));
    }
    if policy != "never" {
        t.push_str("# supervisord waited 1 s, 2 s, 3 s ... between failed starts; corral doubles from restart_delay.\n");
        t.push_str("restart_delay = \"1s\"\n");
    }
    t.push_str(&format!(
        "restart_reset = \"{}s\"  # startsecs: a run this long was a good start\n",
        p.startsecs
    ));
    if p.startretries == 0 {
        t.push_str(
            "# startretries = 0 (no retry of a failed start): corral's nearest is one retry.\n",
        );
    }
    t.push_str(&format!(
        "restart_limit = {}  # startretries\n",
        p.startretries.max(1)
    ));
    if let Some(sig) = &p.stopsignal {
        t.push_str(&format!("stop_signal = \"{sig}\"\n"));
    }
    t.push_str(&format!(
        "stop_timeout = \"{}s\"  # stopwaitsecs\n",
        p.stopwaitsecs
    ));
    if let Some(note) = ordering_note(p, all) {
        t.push_str(&note);
    }
    for c in &p.comments {
        t.push_str(&format!("# {c}\n"));
    }
    t.push_str("\n[env]\n");
    for (k, v) in &p.env {
        t.push_str(&format!("{} = {}\n", toml_key(k), toml_string(v)));
    }
    if let Some((path, maxbytes, backups)) = &p.log {
        t.push_str(&format!("\n[log]\nfile = {}\n", toml_string(path)));
        match *maxbytes {
            0 => t.push_str(
                "# supervisord never rotated it (maxbytes = 0); corral rotates at max_size (default 10MiB).\n",
            ),
            n if n < 4096 => t.push_str("max_size = \"4KiB\"  # corral's smallest\n"),
            n => t.push_str(&format!("max_size = {}\n", size(n))),
        }
        t.push_str(&format!("keep = {}\n", backups.clamp(&0, &1000)));
    }
    t
}

/// A comment on supervisord's start order, when priorities differ.
fn ordering_note(p: &Process, all: &[Process]) -> Option<String> {
    if all.iter().all(|q| q.order == p.order) {
        return None;
    }
    let before: Vec<&str> = all
        .iter()
        .filter(|q| q.order < p.order)
        .map(|q| q.name.as_str())
        .collect();
    let mut note = format!(
        "# priority {}{}: supervisord started lower priorities first and stopped them last, without waiting for them.\n",
        p.order.1,
        if p.group.is_some() && p.order.0 != p.order.1 {
            format!(" (group priority {})", p.order.0)
        } else {
            String::new()
        }
    );
    if !before.is_empty() {
        let shown: Vec<&str> = before.iter().take(6).copied().collect();
        let more = if before.len() > shown.len() {
            format!(" and {} more", before.len() - shown.len())
        } else {
            String::new()
        };
        note.push_str(&format!(
            "# It came after {}{more}; corral starts everything at once: add requires = [...] to wait for one.\n",
            shown.join(", ")
        ));
    }
    Some(note)
}

/// Bytes as corral's size, in the largest unit that divides them.
fn size(n: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n.is_multiple_of(scale) {
            return format!("\"{}{unit}\"", n / scale);
        }
    }
    n.to_string()
}

/// A TOML key, quoted when it is not a bare key.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml_string(k)
    }
}

#[cfg(test)]
mod tests;
