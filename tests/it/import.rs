//! `corral import crontab` end to end: a crontab with each kind of line
//! becomes files that `corral check` accepts and a real PID 1 runs.

use std::process::Command;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![imported_crontab_checks_and_runs];

fn imported_crontab_checks_and_runs() -> TestResult {
    require_pid_namespace()?;
    let dir = TempDir::new("import");
    let marker = dir.path("rebooted");
    let crontab = dir.write(
        "crontab",
        &format!(
            "SHELL=/bin/sh\nMAILTO=root\nGREETING = \"hi there\"\n\
             */5 * * * * root /usr/bin/logger -t tick five\n\
             @reboot root sh -c 'cat > {}; echo \"$GREETING\" >> {}' %literal $GREETING%second\n\
             0 4 * * 0 nobody /usr/bin/find /tmp -mtime +7 -delete\n",
            marker.display(),
            marker.display()
        ),
    );
    let out_dir = dir.path("services.d");
    let run = |args: &[&str]| Command::new(corral_bin()).args(args).output().unwrap();
    let import = || {
        run(&[
            "import",
            "crontab",
            crontab.to_str().unwrap(),
            "--system",
            "-o",
            out_dir.to_str().unwrap(),
        ])
    };
    let out = import();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("MAILTO is not supported"), "{stderr}");
    let written = String::from_utf8_lossy(&out.stdout);
    assert_eq!(written.lines().count(), 3, "{written}");
    // A second import would overwrite: refused, nothing touched.
    let again = import();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("would overwrite"));

    let check = run(&["check", "--services", out_dir.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("3 service(s) valid"), "{said}");
    assert!(
        said.contains("cron-4-logger: cron \"*/5 * * * *\""),
        "{said}"
    );

    // Under a real PID 1: @reboot ran once at start with its stdin.
    let setup = Setup::new("import-run", &[]);
    std::fs::remove_dir_all(setup.dir.path("services.d")).unwrap();
    std::fs::rename(&out_dir, setup.dir.path("services.d")).unwrap();
    let c = setup.start();
    c.wait_socket();
    wait_until("the @reboot job", 5 * SECOND, || {
        c.service("cron-5-sh")["state"] == "exited"
    });
    // stdin is cron's literal text; the command's own $GREETING is [env].
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "literal $GREETING\nsecond\nhi there\n"
    );
    assert_eq!(
        c.service("cron-4-logger")["state"],
        "stopped",
        "waits for its time"
    );

    // Not a crontab at all: every line that is not, with its number.
    let ini = dir.write("supervisord.conf", "[supervisord]\nnodaemon=true\n");
    let out = run(&["import", "crontab", ini.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("supervisord.conf:1: not a crontab line"),
        "{stderr}"
    );
    Ok(())
}
