use super::*;

const USER_CRONTAB: &str = r#"# m h dom mon dow command
SHELL=/bin/bash
PATH = /usr/local/bin:/usr/bin:/bin
MAILTO="ops@example.com"
GREETING = 'hello world'
30 3 * * * /usr/local/bin/backup --full >> /var/log/backup.log 2>&1
*/15 9-17 * * 1-5 echo "$GREETING" | mail -s report%first line%second line with \% sign
@reboot /usr/local/bin/warm-cache
CRON_TZ=Europe/Berlin
@daily /usr/local/bin/backup --incremental
"#;

fn file<'a>(out: &'a Imported, name: &str) -> &'a str {
    out.file(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", out.files))
}

#[test]
fn every_kind_of_line() {
    let out = import("crontab", USER_CRONTAB, false).unwrap();
    let names: Vec<&str> = out.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "cron-6-backup",
            "cron-7-echo",
            "cron-8-warm-cache",
            "cron-10-backup"
        ]
    );
    assert_eq!(
        out.notes,
        ["crontab:4: MAILTO is not supported: corral sends each job's output to the container log"]
    );
    let backup = file(&out, "cron-6-backup");
    assert!(
        backup.contains("#   30 3 * * * /usr/local/bin/backup --full"),
        "{backup}"
    );
    assert!(
        backup.contains(
            "command = [\"/bin/bash\", \"-c\", \"/usr/local/bin/backup --full >> /var/log/backup.log 2>&1\"]"
        ),
        "SHELL decides the shell: {backup}"
    );
    assert!(
        backup.contains("[schedule]\ncron = \"30 3 * * *\"\n"),
        "{backup}"
    );
    assert!(
        backup.contains("PATH = \"/usr/local/bin:/usr/bin:/bin\""),
        "{backup}"
    );
    assert!(
        backup.contains("GREETING = \"hello world\""),
        "quotes removed: {backup}"
    );
    assert!(!backup.contains("MAILTO ="), "{backup}");
    assert!(
        !backup.contains("timezone"),
        "CRON_TZ applies below its line only"
    );

    // % ends the command; the rest is stdin, % a newline, \% a %.
    let mail = crate::config::raw::parse(file(&out, "cron-7-echo")).unwrap();
    let command = mail.get_ref().get("command").unwrap();
    assert_eq!(
        command.get_ref().get(2).and_then(|c| c.get_ref().as_str()),
        Some(
            "echo \"$GREETING\" | mail -s report <<'CORRAL_CRON_INPUT'\nfirst line\nsecond line with % sign\nCORRAL_CRON_INPUT"
        )
    );
    let reboot = file(&out, "cron-8-warm-cache");
    assert!(
        reboot.contains("optional = true") && !reboot.contains("[schedule]"),
        "{reboot}"
    );
    let daily = file(&out, "cron-10-backup");
    assert!(
        daily.contains("cron = \"@daily\"\ntimezone = \"Europe/Berlin\""),
        "{daily}"
    );
}

#[test]
fn system_crontabs_have_a_user_column() {
    let text = "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n@weekly www-data /usr/bin/php /srv/cron.php\n";
    let out = import("/etc/crontab", text, true).unwrap();
    assert!(file(&out, "cron-1-cd").contains("user = \"root\"\n"));
    assert!(
        file(&out, "cron-1-cd").contains("run = \"cd / && run-parts --report /etc/cron.hourly\"")
    );
    assert!(file(&out, "cron-2-php").contains("user = \"www-data\""));
    // Without --system the user would be taken for the command.
    let e = import("/etc/crontab", "17 * * * * root\n", true).unwrap_err();
    assert_eq!(e, ["/etc/crontab:1: no command after the schedule"]);
}

#[test]
fn what_is_not_a_crontab_says_where() {
    let ini = "[program:web]\ncommand=/usr/bin/web\n";
    let e = import("supervisord.conf", ini, false).unwrap_err();
    assert!(
        e[0].starts_with("supervisord.conf:1: not a crontab line"),
        "{e:?}"
    );
    let e = import("c", "61 * * * * x\n* * * *\n@often y\n", false).unwrap_err();
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("c:1: `61 * * * *`:"), "{e:?}");
    assert!(e[1].starts_with("c:2: not a crontab line"), "{e:?}");
    assert!(e[2].starts_with("c:3: unknown nickname @often"), "{e:?}");
    assert!(
        import("c", "# only a comment\nA=1\n", false).unwrap_err()[0].contains("no crontab entry")
    );
}

#[test]
fn names_stay_unique_and_files_look_like_crontabs() {
    let out = import("c", "* * * * * /bin/x\n", false).unwrap();
    assert_eq!(out.files[0].0, "cron-1-x");
    let mut twice = Imported::default();
    twice.files.push(("cron-1-x".into(), String::new()));
    assert_eq!(unique_name(&twice, "cron-1-x"), "cron-1-x-2");
    assert!(looks_like("# crontab\nMAILTO=\"\"\n0 * * * * /bin/true\n"));
    assert!(!looks_like("command = [\"/bin/true\"]\n"));
    assert!(!looks_like("[program:x]\ncommand=/bin/true\n"));
}
