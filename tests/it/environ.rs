//! What a service takes from outside its file, under a real PID 1:
//! environment files and secret files (read at each start, their values in
//! no log or status), `enabled_env`, and `user_env` in the kernel's view
//! of the process.

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    env_files_and_secrets_are_read_at_each_start,
    a_missing_env_file_fails_the_start_without_leaking_values,
    enabled_env_switches_services_on_and_off,
    user_env_gives_the_uid_of_a_volume_owner,
];

fn env_files_and_secrets_are_read_at_each_start() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("envfiles");
    let env_file = tmp.write(
        "app.env",
        "# the app's settings\nA=from-file\nB=\"overridden by env\"\nexport C = spaced out\n",
    );
    let secret = tmp.write("db_password", "hunter2-first\n");
    let c = Setup::new(
        "envfiles",
        &[(
            "app",
            &format!(
                "run = \"echo A=$A B=$B C=$C PW=$DB_PASSWORD; exec sleep 1000\"\n\
                 env_file = [\"{}\", \"-{}\"]\n\
                 env_from_file = {{ DB_PASSWORD = \"{}\" }}\n\
                 env = {{ B = \"from-env\" }}\n",
                env_file.display(),
                tmp.path("missing.env").display(),
                secret.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("the first start's line", 5 * SECOND, || {
        c.stdout()
            .contains("app | A=from-file B=from-env C=spaced out PW=hunter2-first")
    });
    // A rotated secret applies at the next start.
    std::fs::write(&secret, "hunter2-second\n").unwrap();
    let out = c.svctl(&["restart", "app"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("the second start's line", 5 * SECOND, || {
        c.stdout().contains("PW=hunter2-second")
    });
    // corral itself never says the values.
    let status = String::from_utf8_lossy(&c.svctl(&["status", "--json"]).stdout).into_owned();
    let inspect = String::from_utf8_lossy(&c.svctl(&["inspect", "--json"]).stdout).into_owned();
    for text in [&status, &inspect, &c.stderr()] {
        assert!(!text.contains("hunter2"), "a secret leaked: {text}");
    }
    Ok(())
}

fn a_missing_env_file_fails_the_start_without_leaking_values() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("envbad");
    let bad = tmp.write("bad.env", "TOKEN=hunter2\nhunter2-on-a-line-of-its-own\n");
    // A secret path in a volume the service's user controls, made a link
    // to a root-only file: corral (root) must not read it for them.
    let root_only = tmp.write("root-only", "hunter2-root\n");
    std::os::unix::fs::symlink(&root_only, tmp.path("planted")).unwrap();
    std::os::unix::fs::lchown(tmp.path("planted"), Some(65534), Some(65534)).unwrap();
    let c = Setup::new(
        "envbad",
        &[
            (
                "gone",
                &format!(
                    "run = \"exec sleep 1000\"\nenv_file = [\"{}\"]\n",
                    tmp.path("nope.env").display()
                ),
            ),
            (
                "planted",
                &format!(
                    "run = \"exec sleep 1000\"\nenv_from_file = {{ TOKEN = \"{}\" }}\n",
                    tmp.path("planted").display()
                ),
            ),
            (
                "garbled",
                &format!(
                    "run = \"exec sleep 1000\"\nenv_file = [\"{}\"]\n",
                    bad.display()
                ),
            ),
        ],
    )
    .start();
    c.wait_socket();
    wait_until("both start failures", 5 * SECOND, || {
        let err = c.stderr();
        err.contains("nope.env: No such file")
            && err.contains("bad.env: line 2: not KEY=VALUE")
            && err.contains("planted: is a symbolic link owned by uid 65534")
    });
    assert!(!c.stderr().contains("hunter2"), "{}", c.stderr());
    let gone = c.service("gone");
    assert_ne!(gone["state"], "running", "{gone}");
    Ok(())
}

fn enabled_env_switches_services_on_and_off() -> TestResult {
    require_pid_namespace()?;
    let services = [
        (
            "cron",
            "run = \"exec sleep 1000\"\nenabled = false\nenabled_env = \"ENABLE_CRON\"\n",
        ),
        (
            "mail",
            "run = \"exec sleep 1000\"\nenabled_env = \"ENABLE_MAIL\"\n",
        ),
        (
            "web",
            "run = \"exec sleep 1000\"\nenabled_env = \"ENABLE_WEB\"\n",
        ),
    ];
    let c = Setup::new("enabled-env", &services)
        .env("ENABLE_CRON", "on")
        .env("ENABLE_MAIL", "0")
        .start();
    c.wait_socket();
    c.wait_state("cron", "running", 5 * SECOND);
    c.wait_state("web", "running", 5 * SECOND);
    let mail = c.service("mail");
    assert_eq!(
        (mail["state"].as_str(), mail["enabled"].as_bool()),
        (Some("stopped"), Some(false))
    );
    drop(c);
    // Anything else is a startup error naming the variable.
    let mut c = Setup::new("enabled-env-bad", &services)
        .env("ENABLE_MAIL", "sometimes")
        .start();
    assert_eq!(c.wait_exit(10 * SECOND), 2);
    assert!(
        c.stderr()
            .contains("ENABLE_MAIL (enabled_env of mail) must be 1, true, yes or on"),
        "{}",
        c.stderr()
    );
    Ok(())
}

fn user_env_gives_the_uid_of_a_volume_owner() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("userenv");
    let data = tmp.path("data");
    std::fs::create_dir_all(&data).unwrap();
    nix::unistd::chown(
        &data,
        Some(nix::unistd::Uid::from_raw(4321)),
        Some(nix::unistd::Gid::from_raw(4322)),
    )
    .unwrap();
    let c = Setup::new(
        "userenv",
        &[(
            "app",
            &format!(
                "run = \"grep -E '^(Uid|Gid):' /proc/self/status > {0}/ids; echo HOME=$HOME USER=$USER >> {0}/ids; exec sleep 1000\"\n\
                 user = \"nobody\"\nuser_env = \"APP_UID\"\n\
                 [actions.whoami]\nrun = \"id -u\"\n",
                data.display()
            ),
        )],
    )
    .env("APP_UID", "4321:4322")
    .start();
    c.wait_socket();
    let app = c.wait_state("app", "running", 5 * SECOND);
    assert_eq!(app["user"], "nobody (4321:4322 from APP_UID)");
    // It wrote into the volume owned by that uid, as that uid and gid; the
    // name and HOME stay the image user's.
    wait_until("the id report", 5 * SECOND, || {
        tmp.read("data/ids").contains("HOME=")
    });
    let ids = tmp.read("data/ids");
    assert!(ids.contains("Uid:\t4321\t4321\t4321\t4321"), "{ids}");
    assert!(ids.contains("Gid:\t4322\t4322\t4322\t4322"), "{ids}");
    assert!(ids.contains("HOME=/nonexistent USER=nobody"), "{ids}");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data.join("ids")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    // Its helpers run as it does.
    let out = c.svctl(&["action", "app", "whoami"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4321\n", "{out:?}");
    Ok(())
}
