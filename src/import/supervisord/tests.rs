use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{RestartPolicy, ServiceSpec};

/// Imports `text` as /etc/supervisor/supervisord.conf with this
/// environment and these files for `[include]` (pattern -> files).
fn run(
    text: &str,
    env: &[(&str, &str)],
    includes: &[(&str, &[(&str, &str)])],
) -> Result<Imported, Vec<String>> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| env.get(name).cloned();
    let mut include = |pattern: &str| {
        Ok(includes
            .iter()
            .find(|(p, _)| *p == pattern)
            .map(|(_, files)| {
                files
                    .iter()
                    .map(|(f, t)| (f.to_string(), t.to_string()))
                    .collect()
            })
            .unwrap_or_default())
    };
    let mut host = Host {
        env: &lookup,
        node: "builder".into(),
        include: &mut include,
    };
    import(
        "/etc/supervisor/supervisord.conf",
        "/etc/supervisor",
        text,
        &mut host,
    )
}

fn file<'a>(out: &'a Imported, name: &str) -> &'a str {
    out.file(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", out.files))
}

/// The file as corral loads it (numeric users only: no passwd needed).
fn spec(out: &Imported, name: &str) -> ServiceSpec {
    let text = file(out, name);
    let users = crate::config::users::UserDb::load(Path::new("/nonexistent"));
    let mut warnings = Vec::new();
    crate::config::parse_service(
        &PathBuf::from(format!("{name}.toml")),
        name,
        text.as_bytes(),
        &users,
        &mut warnings,
    )
    .unwrap_or_else(|e| panic!("{name}.toml does not load: {e:?}\n{text}"))
}

const EVERY_KEY: &str = r#"[supervisord]
nodaemon = true
environment = TZ="UTC",SHARED="global"

[program:web]
command = /usr/bin/gunicorn --bind "0.0.0.0:%(ENV_PORT)s" app:%(program_name)s ; the app
process_name = %(program_name)s
numprocs = 1
directory = /srv/%(program_name)s
user = 33
environment = APP_ENV="prod",SHARED="own",HOME_COPY="%(ENV_HOME)s"
autostart = false
autorestart = unexpected
exitcodes = 0,2
startsecs = 5
startretries = 7
stopsignal = QUIT
stopwaitsecs = 20
priority = 10
redirect_stderr = true
stdout_logfile = /var/log/web/current
stdout_logfile_maxbytes = 1MB
stdout_logfile_backups = 4
umask = 027
serverurl = AUTO
"#;

#[test]
fn every_mapped_key_lands_in_a_loadable_file() {
    let out = run(EVERY_KEY, &[("HOME", "/root")], &[]).unwrap();
    let text = file(&out, "web");
    let web = spec(&out, "web");
    // %(ENV_PORT)s waits for run time, in quotes as it stood; the rest
    // was expanded now.
    assert_eq!(
        web.argv,
        [
            "/bin/sh",
            "-c",
            "umask 027; exec /usr/bin/gunicorn --bind 0.0.0.0:\"${PORT?}\" app:web"
        ]
    );
    assert!(
        text.contains("# %(ENV_PORT)s: read when the service starts"),
        "{text}"
    );
    assert_eq!(web.credentials.as_ref().unwrap().uid, Some(33));
    assert_eq!(web.working_dir.as_deref(), Some(Path::new("/srv/web")));
    assert!(!web.enabled);
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.success_exit_codes, [0, 2]);
    assert_eq!(web.backoff.reset_after, Duration::from_secs(5));
    assert_eq!(web.backoff.limit, Some(7));
    assert_eq!(web.backoff.initial, Duration::from_secs(1));
    assert_eq!(web.stop_signal, nix::sys::signal::Signal::SIGQUIT);
    assert_eq!(web.stop_timeout, Duration::from_secs(20));
    let env: BTreeMap<&str, &str> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["TZ"], "UTC");
    assert_eq!(env["SHARED"], "own", "the program's environment wins");
    assert_eq!(env["APP_ENV"], "prod");
    assert_eq!(env["HOME_COPY"], "/root", "expanded at import");
    assert_eq!(env["SUPERVISOR_PROCESS_NAME"], "web");
    assert_eq!(env["SUPERVISOR_ENABLED"], "1");
    let log = web.log.file.as_ref().unwrap();
    assert_eq!(log.path, Path::new("/var/log/web/current"));
    assert_eq!((log.max_size, log.keep), (1 << 20, 4));
    // What did not map is a comment saying why.
    for said in [
        "# redirect_stderr = true: stderr goes where stdout goes",
        "# serverurl = AUTO: corral has no XML-RPC server",
        "# environment: %(ENV_...)s was expanded by this import",
    ] {
        assert!(text.contains(said), "{said:?} in\n{text}");
    }
    assert_eq!(
        out.notes,
        [
            "/etc/supervisor/supervisord.conf:1: [supervisord] nodaemon: supervisord's own settings, not the programs'; corral runs in the foreground and logs to the container (its settings: README, Running corral)"
        ]
    );
}

#[test]
fn defaults_are_supervisords_not_corrals() {
    let out = run("[program:app]\ncommand=app --serve\n", &[], &[]).unwrap();
    let app = spec(&out, "app");
    assert_eq!(app.argv, ["app", "--serve"]);
    assert!(app.enabled);
    assert_eq!(
        app.restart,
        RestartPolicy::OnFailure,
        "autorestart=unexpected"
    );
    assert_eq!(app.success_exit_codes, [0]);
    assert_eq!(
        app.backoff.reset_after,
        Duration::from_secs(1),
        "startsecs=1"
    );
    assert_eq!(app.backoff.limit, Some(3), "startretries=3");
    assert_eq!(app.stop_timeout, Duration::from_secs(10), "stopwaitsecs=10");
    assert!(app.log.file.is_none(), "AUTO: the container log");
    assert!(app.credentials.is_none());
}

#[test]
fn priorities_become_an_ordering_note() {
    let text = "[program:db]\ncommand=db\npriority=1\n[program:app]\ncommand=app\n";
    let out = run(text, &[], &[]).unwrap();
    assert!(file(&out, "db").contains("# priority 1: supervisord started lower priorities first"));
    assert!(!file(&out, "db").contains("It came after"));
    assert!(
        file(&out, "app").contains("# It came after db; corral starts everything at once: add requires = [...] to wait for one.")
    );
    // One priority for all: nothing to say.
    let out = run("[program:a]\ncommand=a\npriority=5\n", &[], &[]).unwrap();
    assert!(!file(&out, "a").contains("priority"));
}

#[test]
fn autorestart_and_exitcodes() {
    let text = "[program:a]\ncommand=a\nautorestart=true\n\
                [program:b]\ncommand=b\nautorestart=false\n\
                [program:c]\ncommand=c\nexitcodes=\n\
                [program:d]\ncommand=d\nautorestart=sometimes\n";
    let e = run(text, &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:12: autorestart: `sometimes`: supervisord reads true, false or unexpected"
        ]
    );
    let out = run(&text[..text.find("[program:d]").unwrap()], &[], &[]).unwrap();
    assert_eq!(spec(&out, "a").restart, RestartPolicy::Always);
    assert_eq!(spec(&out, "b").restart, RestartPolicy::Never);
    assert!(file(&out, "b").contains("supervisord still retried a start"));
    // No expected exit code: every exit is restarted.
    assert_eq!(spec(&out, "c").restart, RestartPolicy::Always);
}

#[test]
fn numprocs_name_each_process() {
    let text = "[program:worker]\ncommand=/bin/worker --id %(process_num)d --of %(numprocs)d\n\
                process_name=%(program_name)s-%(process_num)02d\nnumprocs=3\nnumprocs_start=1\n";
    let out = run(text, &[], &[]).unwrap();
    let names: Vec<&str> = out.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["worker-01", "worker-02", "worker-03"]);
    assert_eq!(
        spec(&out, "worker-02").argv,
        ["/bin/worker", "--id", "2", "--of", "3"]
    );
    let e = run("[program:w]\ncommand=/bin/w\nnumprocs=2\n", &[], &[]).unwrap_err();
    assert!(
        e[0].contains("needs %(process_num) in process_name"),
        "{e:?}"
    );
}

#[test]
fn groups_and_includes() {
    let main = "[include]\nfiles = conf.d/*.conf /opt/extra.ini\n\n\
                [group:shop]\nprograms = api,jobs\npriority = 5\n";
    let api = "[program:api]\ncommand=/srv/api --root %(here)s --group %(group_name)s\n";
    let jobs = "[program:jobs]\ncommand=/srv/jobs\n[include]\nfiles=more/*.conf\n";
    let out = run(
        main,
        &[],
        &[
            (
                "/etc/supervisor/conf.d/*.conf",
                &[
                    ("/etc/supervisor/conf.d/api.conf", api),
                    ("/etc/supervisor/conf.d/jobs.conf", jobs),
                ],
            ),
            ("/opt/extra.ini", &[]),
        ],
    )
    .unwrap();
    assert_eq!(
        spec(&out, "api").argv,
        [
            "/srv/api",
            "--root",
            "/etc/supervisor/conf.d",
            "--group",
            "shop"
        ]
    );
    assert!(
        file(&out, "api")
            .contains("# Imported from /etc/supervisor/conf.d/api.conf:1 [program:api]")
    );
    assert!(file(&out, "jobs").contains("# In [group:shop]"));
    let notes = out.notes.join("\n");
    assert!(notes.contains("/opt/extra.ini: no file matches"), "{notes}");
    assert!(
        notes.contains("jobs.conf:3: [include] in an included file"),
        "{notes}"
    );
    assert!(
        notes.contains("svctl restart api jobs does what supervisorctl restart shop:* did"),
        "{notes}"
    );
    let e = run("[group:g]\nprograms=ghost\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:1: [group:g] names `ghost`, which has no [program:ghost] section"
        ]
    );
}

#[test]
fn environment_is_expanded_where_corral_cannot_wait() {
    let text = "[program:app]\ncommand=/app %(ENV_ARGS)s\ndirectory=%(ENV_APP_DIR)s\n";
    let out = run(text, &[("APP_DIR", "/srv/app")], &[]).unwrap();
    let app = spec(&out, "app");
    // Unquoted: split into words at run time as supervisord split it,
    // without globbing.
    assert_eq!(app.argv[2], "set -f; exec /app ${ARGS?}");
    assert_eq!(app.working_dir.as_deref(), Some(Path::new("/srv/app")));
    assert!(file(&out, "app").contains("# directory: %(ENV_...)s was expanded by this import"));
    let e = run(text, &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:3: directory: %(ENV_APP_DIR)s: APP_DIR is not set for this import (supervisord would refuse the file too): set it when importing, e.g. APP_DIR=value corral import supervisord FILE"
        ]
    );
    // A program's own environment counts, as in supervisord.
    let text = "[program:app]\ncommand=/app\nenvironment=D=\"/d\"\ndirectory=%(ENV_D)s\n";
    let out = run(text, &[], &[]).unwrap();
    assert_eq!(
        spec(&out, "app").working_dir.as_deref(),
        Some(Path::new("/d"))
    );
}

#[test]
fn log_files_and_the_console() {
    let docker = "[program:a]\ncommand=a\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n\
                  stderr_logfile=/dev/stderr\nstderr_logfile_maxbytes=0\n";
    let out = run(docker, &[], &[]).unwrap();
    assert!(spec(&out, "a").log.file.is_none());
    assert!(!file(&out, "a").contains("logfile"), "{}", file(&out, "a"));
    let two = "[program:b]\ncommand=b\nstdout_logfile=/var/log/b.out\nstdout_logfile_maxbytes=0\n\
               stderr_logfile=/var/log/b.err\nstdout_syslog=true\n\
               [program:c]\ncommand=c\nstdout_logfile=NONE\nstderr_logfile=/var/log/c.err\n";
    let out = run(two, &[], &[]).unwrap();
    let b = file(&out, "b");
    assert_eq!(
        spec(&out, "b").log.file.unwrap().path,
        Path::new("/var/log/b.out")
    );
    assert!(
        b.contains(
            "# stderr_logfile = /var/log/b.err: corral writes stdout and stderr to one file"
        ),
        "{b}"
    );
    assert!(b.contains("supervisord never rotated it"), "{b}");
    assert!(b.contains("# stdout_syslog = true"), "{b}");
    let c = file(&out, "c");
    assert_eq!(
        spec(&out, "c").log.file.unwrap().path,
        Path::new("/var/log/c.err")
    );
    assert!(
        c.contains("stdout_logfile = NONE: supervisord discarded it"),
        "{c}"
    );
}

#[test]
fn what_is_not_a_supervisord_file_is_refused() {
    let e = run("[mysqld]\nport=3306\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf: not a supervisord configuration: it has no [supervisord], [program:x] or [include] section (only [mysqld])"
        ]
    );
    let e = run("command = [\"/bin/true\"]\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:1: not a supervisord configuration: a line before any [section] header: supervisord files start with one, e.g. [program:web]"
        ]
    );
    // One of its own, with a bad line: every bad line, plainly.
    let e = run("[program:a]\ncommand=a\nnonsense\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        ["/etc/supervisor/supervisord.conf:3: not `key = value` or a [section]: \"nonsense\""]
    );
    let e = run("[supervisord]\nnodaemon=true\n", &[], &[]).unwrap_err();
    assert!(
        e[0].ends_with("no [program:x] section: nothing to import"),
        "{e:?}"
    );
    let e = run("[program:x]\nuser=root\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:1: [program:x] has no command (supervisord refuses it too)"
        ]
    );
    let e = run("[program:x]\ncommand=/bin/x \"open\n", &[], &[]).unwrap_err();
    assert_eq!(
        e,
        ["/etc/supervisor/supervisord.conf:2: command: no closing quotation"]
    );
}

#[test]
fn names_must_suit_corral_and_be_unique() {
    let e = run(
        "[program:a]\ncommand=a\nprocess_name=x\n[program:b]\ncommand=b\nprocess_name=x\n",
        &[],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e,
        [
            "/etc/supervisor/supervisord.conf:4: process name `x` is also /etc/supervisor/supervisord.conf:1's: corral needs one name per service; change process_name"
        ]
    );
    let e = run("[program:a+b]\ncommand=a\n", &[], &[]).unwrap_err();
    assert!(
        e[0].contains("process name `a+b` cannot be a corral service name"),
        "{e:?}"
    );
}

#[test]
fn unknown_and_unmapped_keys_are_comments() {
    let text = "[program:a]\ncommand=a\nstopasgroup=false\nkillasgroup=false\n\
                stdout_events_enabled=true\nwhatever=1\n\
                [eventlistener:crashmail]\ncommand=crashmail\nevents=PROCESS_STATE\n";
    let out = run(text, &[], &[]).unwrap();
    let a = file(&out, "a");
    for said in [
        "# stopasgroup = false, killasgroup = false: corral always signals the whole process group",
        "# stdout_events_enabled = true: events for supervisord's event listeners",
        "# whatever = 1: not a supervisord program key; left out",
    ] {
        assert!(a.contains(said), "{said:?} in\n{a}");
    }
    assert_eq!(out.files.len(), 1, "the event listener is not a service");
    assert!(out.notes[0].contains("[eventlistener:crashmail]: not imported"));
}

#[test]
fn supervisord_section_gives_user_and_environment() {
    let text = "[supervisord]\nuser=1000\nenvironment=A=\"1\"\n[program:a]\ncommand=a\n\
                [program:b]\ncommand=b\nuser=0\n";
    let out = run(text, &[], &[]).unwrap();
    assert_eq!(spec(&out, "a").credentials.unwrap().uid, Some(1000));
    assert_eq!(spec(&out, "b").credentials.unwrap().uid, Some(0));
    assert!(spec(&out, "a").env.contains(&("A".into(), "1".into())));
}

#[test]
fn a_supervisord_file_is_recognised() {
    assert!(looks_like("[program:web]\ncommand=/bin/web\n"));
    assert!(looks_like("; comment\n[supervisord]\nnodaemon=true\n"));
    assert!(!looks_like(
        "run = \"x\"\n[ready]\ntcp = \"127.0.0.1:80\"\n"
    ));
    assert!(!looks_like("[mysqld]\nport=3306\n"));
}
