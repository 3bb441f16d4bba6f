//! Command-line and environment parsing for `corral` (not for `svctl`,
//! which lives in `ctl`). Produces a `Command`; reads no files.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::DEFAULT_SERVICES_DIR;
use crate::config::units::parse_duration;
use crate::logs::Format;
use crate::supervisor::{DEFAULT_SHUTDOWN_BUDGET, DEFAULT_START_TIMEOUT};

/// Where the control socket lives unless `--socket` or `CORRAL_SOCKET` say
/// otherwise.
pub const DEFAULT_SOCKET: &str = "/run/corral/control.sock";

/// Where a corral that cannot use `DEFAULT_SOCKET` (not root, read-only
/// /run) puts its socket: `$XDG_RUNTIME_DIR/corral/control.sock`, else a
/// private directory of its uid under /tmp. svctl looks there too.
/// The last fallback of a corral that may write nowhere: an abstract
/// socket, written `@corral-UID`.
pub fn abstract_socket(uid: u32) -> PathBuf {
    PathBuf::from(format!("@corral-{uid}"))
}

/// The abstract name of a socket "path" written `@name`.
pub fn abstract_name(path: &std::path::Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .strip_prefix(b"@")
        .filter(|n| !n.is_empty())
}

pub fn fallback_socket(uid: u32, xdg_runtime_dir: Option<&str>) -> PathBuf {
    match xdg_runtime_dir.filter(|d| d.starts_with('/')) {
        Some(dir) => PathBuf::from(dir).join("corral/control.sock"),
        None => PathBuf::from(format!("/tmp/corral-{uid}/control.sock")),
    }
}

/// Where `--metrics` / `CORRAL_METRICS` asks the metrics endpoint to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAddr {
    Tcp(std::net::SocketAddr),
    /// A Unix socket at this absolute path.
    Unix(PathBuf),
}

impl MetricsAddr {
    /// `127.0.0.1:9090`, `[::]:9090` or `/run/corral/metrics.sock`.
    pub fn parse(text: &str) -> Result<MetricsAddr, String> {
        if text.starts_with('/') {
            return Ok(MetricsAddr::Unix(PathBuf::from(text)));
        }
        text.parse().map(MetricsAddr::Tcp).map_err(|_| {
            format!(
                "{text:?} is not a metrics address: write IP:PORT (127.0.0.1:9090, 0.0.0.0:9090, [::]:9090) or an absolute path for a Unix socket"
            )
        })
    }
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAddr::Tcp(a) => write!(f, "http://{a}/metrics"),
            MetricsAddr::Unix(p) => write!(f, "{} (GET /metrics)", p.display()),
        }
    }
}

pub const USAGE: &str = "\
usage: corral [--services DIR] [--socket PATH] [--metrics ADDR] [--] [CMD [ARGS...]]
       corral check [--services DIR]
       corral schema                       (JSON Schema of a service file)
       corral completions bash|zsh|fish    (svctl completion script)
       corral ctl [--socket PATH] VERB [ARGS...]   (the same as svctl)
       corral import crontab FILE [--system] [-o DIR]   (service files from a crontab)
       corral import supervisord FILE [-o DIR]          (service files from a supervisord.conf)

Runs as PID 1: starts the services of DIR (default /etc/corral/services.d,
env CORRAL_SERVICES_DIR), then CMD if given, reaps zombies, forwards signals,
and stops everything in reverse dependency order on SIGTERM or SIGINT.

--metrics ADDR (env CORRAL_METRICS) serves Prometheus metrics at
http://ADDR/metrics: IP:PORT, or an absolute path for a Unix socket. Off
unless given.

environment: CORRAL_SERVICES_DIR, CORRAL_SOCKET, CORRAL_CONTROL_GROUP, CORRAL_LOG (error, warn,
info, debug), CORRAL_SHUTDOWN_TIMEOUT (default 8s), CORRAL_START_TIMEOUT
(longest wait of CMD for ready services, default 60s), CORRAL_LOG_FORMAT
(prefix, json, raw, inherit), CORRAL_LOG_TIMESTAMPS (1 to prefix lines with
RFC 3339 times)";

/// Everything `corral` (the daemon) needs from its arguments and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub services_dir: PathBuf,
    /// The directory was named by the user, so its absence is an error.
    pub services_named: bool,
    pub socket: PathBuf,
    /// The socket path was given: no fallback when it cannot be used.
    pub socket_named: bool,
    /// `CORRAL_CONTROL_GROUP`: a group (name or gid) whose members may use
    /// the read-only verbs.
    pub control_group: Option<String>,
    /// `corral -- CMD ARGS...`
    pub main: Option<Vec<String>>,
    pub shutdown_budget: Duration,
    /// The longest the main command waits for the services to be ready.
    pub start_timeout: Duration,
    /// Console format unless a service's `[log]` says otherwise.
    pub log_format: Format,
    pub log_timestamps: bool,
    /// `--metrics` / `CORRAL_METRICS`: where to serve metrics; none by
    /// default.
    pub metrics: Option<MetricsAddr>,
}

/// What the invocation asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunOptions),
    Check {
        services_dir: PathBuf,
        /// The directory was named (`--services`, CORRAL_SERVICES_DIR):
        /// its absence is an error, as when corral runs.
        named: bool,
    },
    /// `corral ctl ARGS`: the svctl client with these arguments.
    Ctl(Vec<String>),
    /// `corral schema`: print the service file's JSON Schema.
    Schema,
    /// `corral completions SHELL`: print svctl's completion for SHELL.
    Completions(String),
    /// `corral import KIND FILE [-o DIR]`.
    Import {
        kind: crate::import::Kind,
        file: PathBuf,
        out: Option<PathBuf>,
    },
    Help,
    Version,
}

/// Parses `corral`'s arguments (without argv[0]) with `env` as the
/// environment lookup.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Command, String> {
    let mut services: Option<PathBuf> = env("CORRAL_SERVICES_DIR")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut socket = env("CORRAL_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut metrics = env("CORRAL_METRICS")
        .filter(|s| !s.is_empty())
        .map(|v| (v, "CORRAL_METRICS"));
    let mut check = false;
    let mut main = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--services" => {
                services = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--socket" => {
                socket = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--metrics" => {
                metrics = Some((value(i)?, "--metrics"));
                i += 1;
            }
            "--" => {
                main = Some(args.get(i + 1..).unwrap_or_default().to_vec());
                break;
            }
            "check" if i == 0 => check = true,
            "schema" if i == 0 => {
                return match args.get(1) {
                    None => Ok(Command::Schema),
                    Some(a) => Err(format!("corral schema takes no argument `{a}`")),
                };
            }
            "completions" if i == 0 => {
                return match args.get(1..).unwrap_or_default() {
                    [shell] if crate::completions::script(shell).is_some() => {
                        Ok(Command::Completions(shell.clone()))
                    }
                    [shell] => Err(format!(
                        "corral completions {shell}: no such shell; use bash, zsh or fish"
                    )),
                    _ => Err("corral completions needs one shell: bash, zsh or fish".into()),
                };
            }
            "ctl" if i == 0 => return Ok(Command::Ctl(args.get(1..).unwrap_or_default().to_vec())),
            "import" if i == 0 => return parse_import(args.get(1..).unwrap_or_default()),
            s if s.starts_with("--services=") => {
                services = Some(PathBuf::from(&s["--services=".len()..]))
            }
            s if s.starts_with("--socket=") => {
                socket = Some(PathBuf::from(&s["--socket=".len()..]))
            }
            s if s.starts_with("--metrics=") => {
                metrics = Some((s["--metrics=".len()..].to_string(), "--metrics"))
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if check => return Err(format!("corral check takes no argument `{arg}`")),
            _ => {
                main = Some(args.get(i..).unwrap_or_default().to_vec());
                break;
            }
        }
        i += 1;
    }
    let services_named = services.is_some();
    let services_dir = services.unwrap_or_else(|| PathBuf::from(DEFAULT_SERVICES_DIR));
    if check {
        if main.is_some() {
            return Err("corral check takes no command".into());
        }
        return Ok(Command::Check {
            services_dir,
            named: services_named,
        });
    }
    if main.as_ref().is_some_and(Vec::is_empty) {
        return Err("`--` must be followed by a command".into());
    }
    let shutdown_budget = match env("CORRAL_SHUTDOWN_TIMEOUT").filter(|s| !s.is_empty()) {
        None => DEFAULT_SHUTDOWN_BUDGET,
        Some(v) => parse_duration(&v).map_err(|e| format!("CORRAL_SHUTDOWN_TIMEOUT: {e}"))?,
    };
    let start_timeout = match env("CORRAL_START_TIMEOUT").filter(|s| !s.is_empty()) {
        None => DEFAULT_START_TIMEOUT,
        Some(v) => parse_duration(&v).map_err(|e| format!("CORRAL_START_TIMEOUT: {e}"))?,
    };
    let log_format = match env("CORRAL_LOG_FORMAT").filter(|s| !s.is_empty()) {
        None => Format::Prefix,
        Some(v) => Format::parse(&v)
            .ok_or_else(|| format!("CORRAL_LOG_FORMAT={v:?}: use prefix, json, raw or inherit"))?,
    };
    let log_timestamps = match env("CORRAL_LOG_TIMESTAMPS").as_deref() {
        None | Some("" | "0" | "false" | "no") => false,
        Some("1" | "true" | "yes") => true,
        Some(v) => return Err(format!("CORRAL_LOG_TIMESTAMPS={v:?}: use 1 or 0")),
    };
    let metrics = match metrics {
        None => None,
        Some((v, from)) => Some(MetricsAddr::parse(&v).map_err(|e| format!("{from}: {e}"))?),
    };
    Ok(Command::Run(RunOptions {
        metrics,
        services_dir,
        services_named,
        socket_named: socket.is_some(),
        control_group: env("CORRAL_CONTROL_GROUP").filter(|s| !s.is_empty()),
        socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        main,
        shutdown_budget,
        start_timeout,
        log_format,
        log_timestamps,
    }))
}

/// `corral import crontab FILE [--system] [-o DIR]`,
/// `corral import supervisord FILE [-o DIR]`.
fn parse_import(args: &[String]) -> Result<Command, String> {
    const HOW: &str = "use: corral import crontab FILE [--system] [-o DIR], or corral import supervisord FILE [-o DIR]";
    let Some((what, rest)) = args.split_first() else {
        return Err(format!("corral import needs what to import; {HOW}"));
    };
    if what != "crontab" && what != "supervisord" {
        return Err(format!(
            "corral import {what}: not something corral imports (crontab, supervisord); {HOW}"
        ));
    }
    let (mut file, mut out, mut system) = (None, None, false);
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        match a.as_str() {
            "--system" if what == "crontab" => system = true,
            "-o" | "--output" => {
                i += 1;
                out = Some(PathBuf::from(
                    rest.get(i)
                        .ok_or_else(|| format!("{a} needs a directory"))?,
                ));
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(format!("corral import {what}: unknown option {s}; {HOW}"));
            }
            _ if file.is_some() => return Err(format!("corral import: one FILE only; {HOW}")),
            f => file = Some(PathBuf::from(f)),
        }
        i += 1;
    }
    let file = file.ok_or_else(|| format!("corral import {what} needs a FILE; {HOW}"))?;
    let kind = match what.as_str() {
        "crontab" => crate::import::Kind::Crontab { system },
        _ => crate::import::Kind::Supervisord,
    };
    Ok(Command::Import { kind, file, out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(a: &[&str]) -> RunOptions {
        match parse(&args(a), |_| None) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_main_command() {
        let o = run(&[]);
        assert_eq!(o.services_dir, PathBuf::from(DEFAULT_SERVICES_DIR));
        assert!(!o.services_named);
        assert_eq!(o.main, None);
        let o = run(&["--services", "/s", "--", "sh", "-c", "exit 3"]);
        assert_eq!(o.services_dir, PathBuf::from("/s"));
        assert!(o.services_named);
        assert_eq!(o.main, Some(args(&["sh", "-c", "exit 3"])));
        // Like tini, the command may follow without `--`; its own options
        // stay its own.
        assert_eq!(
            run(&["sleep", "--help"]).main,
            Some(args(&["sleep", "--help"]))
        );
    }

    #[test]
    fn environment_and_errors() {
        let env = |k: &str| match k {
            "CORRAL_SERVICES_DIR" => Some("/e".to_string()),
            "CORRAL_SOCKET" => Some("/s.sock".to_string()),
            "CORRAL_SHUTDOWN_TIMEOUT" => Some("3s".to_string()),
            _ => None,
        };
        match parse(&[], env) {
            Ok(Command::Run(o)) => {
                assert_eq!(o.services_dir, PathBuf::from("/e"));
                assert_eq!(o.socket, PathBuf::from("/s.sock"));
                assert_eq!(o.shutdown_budget, Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&args(&["--bogus"]), |_| None).is_err());
        assert!(
            parse(&args(&["--services"]), |_| None)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(parse(&args(&["--"]), |_| None).is_err());
        let bad = |k: &str| (k == "CORRAL_SHUTDOWN_TIMEOUT").then(|| "soon".to_string());
        assert!(
            parse(&[], bad)
                .unwrap_err()
                .contains("CORRAL_SHUTDOWN_TIMEOUT")
        );
        assert_eq!(
            parse(&args(&["check", "--services", "/x"]), |_| None),
            Ok(Command::Check {
                services_dir: PathBuf::from("/x"),
                named: true,
            })
        );
        let metrics = |k: &str| (k == "CORRAL_METRICS").then(|| "[::]:9100".to_string());
        match parse(&[], metrics) {
            Ok(Command::Run(o)) => {
                assert_eq!(
                    o.metrics,
                    Some(MetricsAddr::Tcp("[::]:9100".parse().unwrap()))
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(run(&[]).metrics, None, "off unless asked");
        assert_eq!(
            run(&["--metrics=/run/m.sock"]).metrics,
            Some(MetricsAddr::Unix("/run/m.sock".into()))
        );
        let e = parse(&args(&["--metrics", "localhost:9090"]), |_| None).unwrap_err();
        assert!(e.starts_with("--metrics: \"localhost:9090\" is not"), "{e}");
        assert!(e.contains("IP:PORT"), "{e}");
        assert_eq!(
            parse(
                &args(&["import", "crontab", "/etc/crontab", "--system", "-o", "/s"]),
                |_| None
            ),
            Ok(Command::Import {
                kind: crate::import::Kind::Crontab { system: true },
                file: "/etc/crontab".into(),
                out: Some("/s".into()),
            })
        );
        assert_eq!(
            parse(
                &args(&["import", "supervisord", "/etc/supervisord.conf"]),
                |_| None
            ),
            Ok(Command::Import {
                kind: crate::import::Kind::Supervisord,
                file: "/etc/supervisord.conf".into(),
                out: None,
            })
        );
        assert!(
            parse(&args(&["import", "supervisord", "x", "--system"]), |_| None)
                .unwrap_err()
                .contains("unknown option --system")
        );
        assert!(
            parse(&args(&["import", "inittab", "x"]), |_| None)
                .unwrap_err()
                .contains("not something corral imports")
        );
        assert!(
            parse(&args(&["import", "crontab"]), |_| None)
                .unwrap_err()
                .contains("needs a FILE")
        );
        assert_eq!(
            parse(&args(&["ctl", "status"]), |_| None),
            Ok(Command::Ctl(args(&["status"])))
        );
    }
}
