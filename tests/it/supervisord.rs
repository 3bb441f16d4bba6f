//! `corral import supervisord` end to end: a supervisord.conf using every
//! key the import maps becomes files that `corral check` accepts and a
//! real PID 1 runs, each program seeing what it saw under supervisord.
//! The second test runs the same file under Debian's supervisord and
//! compares what every program reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    imported_supervisord_conf_runs_every_mapped_key,
    imported_programs_see_what_supervisord_showed_them
];

/// Each program reports what it was given: argv, directory, uid, umask
/// and the variables the configuration sets, then waits, saying which
/// stop signal reached it.
const REPORT: &str = r#"#!/bin/sh
name="$SUPERVISOR_PROCESS_NAME"
dir="$(dirname "$0")/reports"
{
  printf 'argv:'; for a in "$@"; do printf ' [%s]' "$a"; done; echo
  echo "cwd: $(pwd)"
  echo "uid: $(id -u)"
  echo "umask: $(umask)"
  env | grep -E '^(GLOBAL|APP_[A-Z]+|SHARED|SUPERVISOR_(ENABLED|PROCESS_NAME|GROUP_NAME))=' | sort
} > "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
trap 'echo QUIT > "$dir/$name.signal"; exit 0' QUIT
trap 'echo TERM > "$dir/$name.signal"; exit 0' TERM
echo "$name to stdout"
echo "$name to stderr" >&2
while :; do sleep 1 & wait $!; done
"#;

/// A supervisord.conf with every mapped key, an [include] and a group.
fn fixture() -> (TempDir, PathBuf) {
    let dir = TempDir::new("supervisord");
    let d = dir.0.display().to_string();
    let report = dir.write("report.sh", REPORT);
    std::fs::set_permissions(&report, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for sub in ["reports", "counts", "www"] {
        std::fs::create_dir_all(dir.path(sub)).unwrap();
        std::fs::set_permissions(
            dir.path(sub),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
    }
    let conf = dir.write(
        "supervisord.conf",
        &format!(
            r#"; as a Debian image would have it
[supervisord]
nodaemon=true
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
environment=GLOBAL="g",SHARED="global"

[include]
files = conf.d/*.conf

[group:shop]
programs=web,worker
priority=100

[program:web]
command=%(here)s/report.sh "two words" it\'s "%(ENV_PORT)s" --name=%(program_name)s ; a comment
directory=%(here)s/www
user=nobody
umask=027
environment=APP_MODE="prod",SHARED="own",APP_LIST="a,b"
stopsignal=QUIT
stdout_logfile=%(here)s/web.log
redirect_stderr=true
priority=5

[program:worker]
command=%(here)s/report.sh %(process_num)d %(group_name)s
process_name=%(program_name)s_%(process_num)02d
numprocs=2

[program:manual]
command=%(here)s/report.sh manual
autostart=false

[program:codes]
command=/bin/sh -c 'n=$(($(cat %(here)s/counts/codes 2>/dev/null || echo 0) + 1)); echo $n > %(here)s/counts/codes; [ $n -ge 2 ] && exit 3; exit 4'
startsecs=0
exitcodes=0,3

[program:crashy]
command=/bin/sh -c 'echo x >> %(here)s/counts/crashy; exit 1'
startsecs=2
startretries=2

[program:stubborn]
command=/bin/sh -c 'trap "" TERM; echo up > %(here)s/counts/stubborn; while :; do sleep 1; done'
stopwaitsecs=1
"#
        ),
    );
    dir.write(
        "conf.d/extra.conf",
        "[program:extra]\ncommand=%(here)s/../report.sh from-include\n",
    );
    (dir, conf)
}

/// What the programs left behind once they all ran and were stopped.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    reports: BTreeMap<String, String>,
    codes_runs: String,
    crashy_runs: usize,
    signals: Vec<String>,
    log_has_both_streams: bool,
}

fn seen(dir: &TempDir) -> Seen {
    let mut reports = BTreeMap::new();
    let mut signals = Vec::new();
    for e in std::fs::read_dir(dir.path("reports")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        match name.strip_suffix(".signal") {
            Some(program) => signals.push(format!("{program}: {}", text.trim())),
            None => {
                reports.insert(name, text);
            }
        }
    }
    signals.sort();
    let log = dir.read("web.log");
    Seen {
        reports,
        codes_runs: dir.read("counts/codes").trim().to_string(),
        crashy_runs: dir.read("counts/crashy").lines().count(),
        signals,
        log_has_both_streams: log.contains("web to stdout") && log.contains("web to stderr"),
    }
}

/// Waits for every autostarted program to have run as far as it goes.
fn settle(dir: &TempDir) {
    wait_until("every program's report", 20 * SECOND, || {
        ["web", "worker_00", "worker_01", "extra"]
            .iter()
            .all(|n| dir.path(&format!("reports/{n}")).exists())
            && dir.read("counts/codes").trim() == "2"
            && dir.read("counts/crashy").lines().count() == 3
            && dir.path("counts/stubborn").exists()
    });
    // crashy has no further start left and codes stays exited: nothing
    // more comes (crashy's retries are 1 s and 2 s apart).
    std::thread::sleep(3 * SECOND);
}

/// Imports into `dir/services.d`, without PORT (the command reads it at
/// run time), and checks the result.
fn import(dir: &TempDir, conf: &Path) -> (String, String) {
    let out_dir = dir.path("services.d");
    let out = Command::new(corral_bin())
        .args(["import", "supervisord"])
        .arg(conf)
        .arg("-o")
        .arg(&out_dir)
        .env_remove("PORT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let check = Command::new(corral_bin())
        .args(["check", "--services"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    (stderr, said)
}

/// Runs the imported files under a real PID 1 until everything settled,
/// lets `check` look at it, stops it and says what the programs left, and
/// corral's exit code.
fn run_corral(dir: TempDir, check: impl FnOnce(&Corral)) -> (Seen, i32) {
    let mut c = Setup::in_dir(dir).env("PORT", "8080").start();
    c.wait_socket();
    settle(&c.dir);
    check(&c);
    c.signal(nix::sys::signal::Signal::SIGTERM);
    let code = c.wait_exit(20 * SECOND);
    (seen(&c.dir), code)
}

fn imported_supervisord_conf_runs_every_mapped_key() -> TestResult {
    require_pid_namespace()?;
    let (dir, conf) = fixture();
    let (notes, checked) = import(&dir, &conf);
    for note in [
        "[group:shop]: corral has no groups; its processes are services of their own (svctl restart web worker_00 worker_01 does what supervisorctl restart shop:* did)",
        "[supervisord] nodaemon, logfile, pidfile, childlogdir:",
    ] {
        assert!(notes.contains(note), "{note:?} in\n{notes}");
    }
    assert!(checked.contains("8 service(s) valid"), "{checked}");
    let web = dir.read("services.d/web.toml");
    assert!(web.contains("# priority 5 (group priority 100)"), "{web}");
    // Refused: overwriting, and a file that is not supervisord's.
    let again = Command::new(corral_bin())
        .args(["import", "supervisord"])
        .arg(&conf)
        .arg("-o")
        .arg(dir.path("services.d"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let crontab = dir.write("crontab", "0 * * * * /bin/true\n");
    let not = Command::new(corral_bin())
        .args(["import", "supervisord"])
        .arg(&crontab)
        .output()
        .unwrap();
    assert_eq!(not.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&not.stderr).contains("crontab:1: not a supervisord configuration"),
        "{}",
        String::from_utf8_lossy(&not.stderr)
    );

    let www = dir.path("www");
    let (seen, code) = run_corral(dir, |c| {
        // autostart=false: defined, not started, until asked.
        assert_eq!(c.service("manual")["state"], "stopped");
        assert!(c.svctl(&["start", "manual"]).status.success());
        wait_until("manual's report", 5 * SECOND, || {
            c.dir.path("reports/manual").exists()
        });
        // exitcodes=0,3: exit 4 restarted, exit 3 not.
        let codes = c.service("codes");
        assert_eq!(codes["state"], "exited", "{codes}");
        assert_eq!(codes["restarts"], 1, "{codes}");
        assert_eq!(codes["last_exit"]["code"], 3, "{codes}");
        // startretries=2: three quick runs, then failed.
        assert_eq!(c.service("crashy")["state"], "failed");
        // stopwaitsecs=1: SIGKILL one second after the ignored TERM, not
        // corral's five or supervisord's default ten.
        let started = std::time::Instant::now();
        assert!(c.svctl(&["stop", "stubborn"]).status.success());
        assert!(started.elapsed() < 4 * SECOND, "{:?}", started.elapsed());
        let stubborn = c.service("stubborn");
        assert_eq!(stubborn["last_exit"]["signal"], 9, "{stubborn}");
    });
    assert_eq!(
        seen.reports["web"],
        format!(
            "argv: [two words] [it's] [8080] [--name=web]\ncwd: {}\nuid: 65534\numask: 0027\n\
             APP_LIST=a,b\nAPP_MODE=prod\nGLOBAL=g\nSHARED=own\n\
             SUPERVISOR_ENABLED=1\nSUPERVISOR_GROUP_NAME=shop\nSUPERVISOR_PROCESS_NAME=web\n",
            www.display()
        )
    );
    assert!(
        seen.reports["worker_01"].starts_with("argv: [1] [shop]\n"),
        "{}",
        seen.reports["worker_01"]
    );
    assert!(seen.reports["extra"].starts_with("argv: [from-include]\n"));
    assert_eq!(code, 0, "every service stopped in time");
    assert_eq!(seen.codes_runs, "2");
    assert_eq!(seen.crashy_runs, 3);
    assert!(seen.log_has_both_streams, "{seen:?}");
    // stopsignal=QUIT for web; the rest got TERM.
    assert_eq!(
        seen.signals,
        [
            "extra: TERM",
            "manual: TERM",
            "web: QUIT",
            "worker_00: TERM",
            "worker_01: TERM"
        ]
    );
    Ok(())
}

fn imported_programs_see_what_supervisord_showed_them() -> TestResult {
    require_pid_namespace()?;
    let Some(supervisord) = ["/usr/bin/supervisord", "/usr/local/bin/supervisord"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        return Err(Skip(
            "supervisord is not installed (Debian's supervisor package; .ci/run installs it)"
                .into(),
        ));
    };
    let (dir, conf) = fixture();
    // supervisord first, reading PORT from its environment at its start.
    let mut sup = Command::new(&supervisord)
        .args(["-n", "-c"])
        .arg(&conf)
        .env("PORT", "8080")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    settle(&dir);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = sup.wait().unwrap();
    assert!(status.success(), "supervisord: {status}");
    let theirs = seen(&dir);
    for sub in ["reports", "counts"] {
        std::fs::rename(dir.path(sub), dir.path(&format!("{sub}.supervisord"))).unwrap();
        std::fs::create_dir_all(dir.path(sub)).unwrap();
        std::fs::set_permissions(
            dir.path(sub),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
    }
    std::fs::remove_file(dir.path("web.log")).unwrap();
    import(&dir, &conf);
    // manual stays down under both: supervisord never started it.
    let (ours, code) = run_corral(dir, |_| {});
    assert_eq!(ours, theirs);
    // Where they differ, on purpose: stubborn ignores TERM and was
    // SIGKILLed, which corral's exit code says (supervisord's does not).
    assert_eq!(code, 1);
    Ok(())
}
