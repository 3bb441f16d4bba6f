//! What editors and shells get: `corral schema` checked by an independent
//! JSON Schema validator against the repository's example service files,
//! and `corral completions` run in bash, zsh and fish against a running
//! corral.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    schema_validates_every_example_service_file,
    status_names_lists_one_name_a_line,
    bash_and_fish_complete_verbs_options_and_running_services,
    zsh_completes_verbs_and_running_services,
    inspect_shows_the_images_in_order_the_run_and_the_services,
];

/// The repository's example service files.
fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![root.join("services.d.example")];
    if let Ok(entries) = std::fs::read_dir(root.join("examples")) {
        dirs.extend(entries.flatten().map(|e| e.path().join("services.d")));
    }
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(&d) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml")),
            );
        }
    }
    files.sort();
    files
}

/// Validates TOML files against a JSON Schema with python3-jsonschema: the
/// schema itself against draft-07's meta-schema, then each file; prints
/// `ok PATH` or `bad PATH: why` per file.
const VALIDATE: &str = r#"
import json, sys, tomllib
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
v = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        print("bad", path + ":", "; ".join(e.message for e in errors))
    else:
        print("ok", path)
"#;

fn schema_validates_every_example_service_file() -> TestResult {
    let python = Path::new("/usr/bin/python3");
    let has = Command::new(python)
        .args(["-c", "import tomllib, jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        return Err(Skip(
            "needs /usr/bin/python3 (3.11+, tomllib) with python3-jsonschema".into(),
        ));
    }
    let tmp = TempDir::new("schema");
    let out = Command::new(corral_bin()).arg("schema").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let schema = tmp.path("service.schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let files = examples();
    assert!(files.len() >= 7, "examples not found: {files:?}");
    // Files that must fail, so a schema that accepts anything cannot pass.
    let typo = tmp.path("typo.toml");
    std::fs::write(&typo, "run = \"x\"\nrestart_dely = \"1s\"\n").unwrap();
    let wrong = tmp.path("wrong.toml");
    std::fs::write(
        &wrong,
        "run = \"x\"\nrestart = \"sometimes\"\n[ready]\ntcp = 5432\n",
    )
    .unwrap();
    let out = Command::new(python)
        .args(["-c", VALIDATE])
        .arg(&schema)
        .args(&files)
        .arg(&typo)
        .arg(&wrong)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &files {
        assert!(
            text.lines().any(|l| l == format!("ok {}", f.display())),
            "{} does not validate:\n{text}",
            f.display()
        );
    }
    let bad = |p: &Path| {
        text.lines()
            .find(|l| l.starts_with(&format!("bad {}:", p.display())))
            .unwrap_or_else(|| panic!("{} validated:\n{text}", p.display()))
            .to_string()
    };
    assert!(bad(&typo).contains("restart_dely"), "{text}");
    let w = bad(&wrong);
    assert!(
        w.contains("'sometimes' is not one of") && w.contains("5432 is not of type 'string'"),
        "{w}"
    );
    Ok(())
}

fn status_names_lists_one_name_a_line() -> TestResult {
    require_pid_namespace()?;
    let c = Setup::new(
        "names",
        &[
            ("web", "command = [\"sleep\", \"1000\"]\n"),
            ("db", "command = [\"sleep\", \"1000\"]\n"),
            ("web-log", "command = [\"sleep\", \"1000\"]\n"),
        ],
    )
    .start();
    c.wait_socket();
    let out = c.svctl(&["status", "--names"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "db\nweb\nweb-log\n");
    let out = c.svctl(&["status", "--names", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    Ok(())
}

/// A running corral with three services, and a PATH where `svctl` is
/// corral (the completion scripts call it).
fn completion_setup(name: &str) -> (Corral, String) {
    let c = Setup::new(
        name,
        &[
            (
                "web",
                "command = [\"sleep\", \"1000\"]\n[actions.validate]\nrun = \"true\"\n[actions.reload]\nsignal = \"HUP\"\n",
            ),
            ("db", "command = [\"sleep\", \"1000\"]\n"),
            ("worker", "command = [\"sleep\", \"1000\"]\n"),
        ],
    )
    .start();
    c.wait_socket();
    let bin = svctl_link();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (c, path)
}

fn script(shell: &str, dir: &TempDir) -> PathBuf {
    let out = Command::new(corral_bin())
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = dir.path(&format!("svctl.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn words(out: &std::process::Output) -> Vec<String> {
    let mut w: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        // fish prints `candidate<TAB>description`.
        .map(String::from)
        .collect();
    w.sort();
    w
}

fn bash_and_fish_complete_verbs_options_and_running_services() -> TestResult {
    require_pid_namespace()?;
    if !have("bash") || !have("fish") {
        return Err(Skip("needs bash and fish (Debian's fish package)".into()));
    }
    let (c, path) = completion_setup("complete");
    let tmp = TempDir::new("complete");
    let sock = c.socket.display().to_string();
    let bash = script("bash", &tmp);
    let complete = |line: &[&str]| {
        // COMP_WORDS as bash builds them; the last word is being completed.
        let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; _svctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display(),
            words.join(" "),
            line.len() - 1
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        self::words(&out)
    };
    assert_eq!(complete(&["svctl", "st"]), ["start", "status", "stop"]);
    assert_eq!(
        complete(&["svctl", "--socket", &sock, "restart", ""]),
        ["db", "web", "worker"]
    );
    assert_eq!(
        complete(&["svctl", "--socket", &sock, "logs", "-f", "w"]),
        ["web", "worker"]
    );
    assert_eq!(
        complete(&["svctl", "logs", "--"]),
        ["--follow", "--lines", "--timeout"]
    );
    assert_eq!(complete(&["svctl", "signal", "US"]), ["USR1", "USR2"]);
    assert_eq!(
        complete(&["svctl", "--socket", &sock, "signal", "HUP", "d"]),
        ["db"]
    );
    assert!(complete(&["svctl", "--socket", &sock, "health", ""]).is_empty());
    assert_eq!(
        complete(&["svctl", "--socket", &sock, "action", "w"]),
        ["web", "worker"]
    );
    assert_eq!(
        complete(&["svctl", "--socket", &sock, "action", "web", ""]),
        ["reload", "validate"]
    );
    // With no corral to ask, no names (and no error on the terminal).
    assert!(complete(&["svctl", "--socket", "/nonexistent/sock", "stop", ""]).is_empty());

    let fish = script("fish", &tmp);
    let complete = |line: &str| {
        let out = Command::new("fish")
            .args([
                "--no-config",
                "-c",
                &format!("source {}; complete -C'{line}'", fish.display()),
            ])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let verbs = complete("svctl st");
    for v in ["start", "status", "stop"] {
        assert!(verbs.iter().any(|w| w == v), "{verbs:?}");
    }
    let mut names = complete(&format!("svctl --socket {sock} stop "));
    names.sort();
    assert_eq!(names, ["db", "web", "worker"]);
    let options = complete("svctl status --");
    assert!(options.iter().any(|w| w == "--names"), "{options:?}");
    let signals = complete("svctl signal US");
    assert!(signals.iter().any(|w| w == "USR1"), "{signals:?}");
    let mut actions = complete(&format!("svctl --socket {sock} action web "));
    actions.sort();
    assert_eq!(actions, ["reload", "validate"]);
    let mut names = complete(&format!("svctl --socket {sock} signal HUP "));
    names.sort();
    assert_eq!(names, ["db", "web", "worker"]);
    Ok(())
}

/// zsh completes only inside its line editor: drive a real interactive zsh
/// on a pseudo-terminal (zsh/zpty), type a line and TAB, and read what it
/// lists.
fn zsh_completes_verbs_and_running_services() -> TestResult {
    require_pid_namespace()?;
    if !have("zsh") {
        return Err(Skip("needs zsh (Debian's zsh package)".into()));
    }
    let (c, path) = completion_setup("zcomplete");
    let tmp = TempDir::new("zcomplete");
    let fpath = tmp.path("fpath");
    std::fs::create_dir_all(&fpath).unwrap();
    let script = script("zsh", &tmp);
    std::fs::rename(&script, fpath.join("_svctl")).unwrap();
    let zdot = tmp.path("zdot");
    std::fs::create_dir_all(&zdot).unwrap();
    std::fs::write(
        zdot.join(".zshrc"),
        format!(
            "fpath=({} $fpath)\nautoload -U compinit && compinit -u -D\nzstyle ':completion:*' list-rows-first true\nsetopt nobeep\nPROMPT='> '\n",
            fpath.display()
        ),
    )
    .unwrap();
    // Types `line`, asks for the list of matches (^D, list-choices) and
    // prints what the terminal showed.
    let driver = |line: &str| {
        let program = format!(
            r#"zmodload zsh/zpty
zpty -b z 'ZDOTDIR={zdot} PATH={path} TERM=dumb zsh -i'
zpty -r z out '*> ' || exit 3
zpty -w -n z '{line}'$'\C-d'
# Read until zsh has listed and drawn its prompt again (at most 10 s).
all=
for i in {{1..100}}; do
  sleep 0.1
  while zpty -r -t z chunk; do all+=$chunk; done
  [[ $all == *$'\n> '* ]] && break
done
print -r -- "$all"
zpty -d z
"#,
            zdot = zdot.display(),
        );
        let out = Command::new("zsh")
            .args(["-f", "-c", &program])
            .env("PATH", &path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sock = c.socket.display().to_string();
    let verbs = driver("svctl s");
    for v in ["shutdown", "signal", "start", "status", "stop"] {
        assert!(verbs.contains(v), "{v} not offered:\n{verbs}");
    }
    let names = driver(&format!("svctl --socket {sock} restart "));
    for n in ["db", "web", "worker"] {
        assert!(names.contains(n), "{n} not offered:\n{names}");
    }
    let signals = driver("svctl signal US");
    assert!(
        signals.contains("USR1") && signals.contains("USR2"),
        "{signals}"
    );
    let options = driver("svctl logs --");
    assert!(options.contains("--follow"), "{options}");
    let actions = driver(&format!("svctl --socket {sock} action web "));
    assert!(
        actions.contains("reload") && actions.contains("validate"),
        "{actions}"
    );
    Ok(())
}

fn inspect_shows_the_images_in_order_the_run_and_the_services() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("inspect");
    let meta = tmp.path("metadata.d");
    std::fs::create_dir_all(&meta).unwrap();
    // Written in the wrong order: the names decide.
    std::fs::write(
        meta.join("20-rbldnsd.toml"),
        "name = \"rbldnsd\"\nversion = \"0.998\"\ngitref = \"v0.998-3\"\n[labels]\nteam = \"dns\"\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("10-base.toml"),
        "name = \"debian-base\"\nversion = \"12.8\"\nbuild_time = \"2026-11-30T10:00:00Z\"\n",
    )
    .unwrap();
    let state = tmp.path("state");
    let start = |state: &Path| {
        Setup::new(
            "inspect",
            &[(
                "web",
                "command = [\"sleep\", \"1000\"]\nuser = \"nobody\"\n[actions.validate]\nrun = \"true\"\n",
            )],
        )
            .env("CORRAL_METADATA_DIR", &meta.display().to_string())
            .env("CORRAL_STATE_DIR", &state.display().to_string())
            .main(&["sleep", "1000"])
            .start()
    };
    let c = start(&state);
    c.wait_socket();
    let out = c.svctl(&["inspect", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debian-base", "rbldnsd"]);
    assert_eq!(doc["images"][1]["labels"]["team"], "dns");
    assert_eq!(doc["images"][0]["file"], "10-base.toml");
    let r = &doc["runtime"];
    assert_eq!(r["main_command"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(r["starts"], 1);
    assert_eq!(r["corral_version"], env!("CARGO_PKG_VERSION"));
    assert!(r["uptime_ms"].is_u64() && r["hostname"].is_string(), "{r}");
    assert_eq!(doc["services"][0]["name"], "web");
    assert_eq!(doc["services"][0]["user"], "nobody");
    assert_eq!(
        doc["services"][0]["actions"],
        serde_json::json!(["validate"])
    );
    // The report for people names the same things.
    let out = c.svctl(&["inspect"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("from       debian-base 12.8") && text.contains("image      rbldnsd 0.998"),
        "{text}"
    );
    assert!(
        text.contains("web: runs as nobody; actions validate"),
        "{text}"
    );
    drop(c);
    // A second start of the same file system counts, keeping the first.
    let c = start(&state);
    c.wait_socket();
    let doc: serde_json::Value =
        serde_json::from_slice(&c.svctl(&["inspect", "--json"]).stdout).unwrap();
    assert_eq!(doc["runtime"]["starts"], 2);
    assert_eq!(doc["runtime"]["first_started"], r["first_started"]);
    // corral check validates metadata files: a bad one fails the build.
    std::fs::write(
        meta.join("30-bad.toml"),
        "version = \"1\"\nbuild_time = \"soon\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(corral_bin())
        .args(["check", "--services"])
        .arg(&c.services)
        .env("CORRAL_METADATA_DIR", &meta)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("30-bad.toml:1: no name"), "{err}");
    Ok(())
}
