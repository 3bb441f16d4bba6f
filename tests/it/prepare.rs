//! `[[prepare]]` steps under a real PID 1 with real users: each verb, a
//! second start that changes nothing, a volume that is never clobbered, a
//! planted link that is not followed, render errors with their line,
//! `user_env` in what is prepared, a read-only file system, and a corral
//! that is not root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    each_verb_prepares_what_the_service_needs,
    a_second_start_changes_nothing_and_a_volume_is_never_clobbered,
    a_link_planted_in_a_chowned_tree_is_not_followed,
    a_render_error_names_the_template_line_and_fails_the_start,
    user_env_owns_what_is_prepared,
    a_read_only_file_system_is_a_clear_error,
    steps_run_as_a_non_root_corral,
];

const NOBODY: u32 = 65534;

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn nogroup() -> u32 {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .and_then(|l| l.split(':').nth(3)?.parse().ok())
        .unwrap()
}

/// A temp dir others may traverse (services run as nobody).
fn open_dir(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// A template tree: a file, a subdirectory with an executable, a link.
fn template(tmp: &TempDir) -> std::path::PathBuf {
    let t = tmp.path("template");
    std::fs::create_dir_all(t.join("bin")).unwrap();
    std::fs::write(t.join("seed.db"), "seed").unwrap();
    std::fs::write(t.join("bin/tool"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(t.join("bin/tool"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("seed.db", t.join("current")).unwrap();
    t
}

fn steps(tmp: &TempDir) -> String {
    format!(
        "run = \"cat {root}/run/app/app.conf; echo started; exec sleep 1000\"\n\
         user = \"nobody\"\n\
         env = {{ DB_HOST = \"db.internal\" }}\n\
         [[prepare]]\nmkdir = \"{root}/run/app\"\nmode = \"0750\"\n\
         [[prepare]]\ncopy = {{ from = \"{root}/template\", to = \"{root}/data\" }}\n\
         [[prepare]]\nchown = \"{root}/data\"\n\
         [[prepare]]\nrender = {{ from = \"{root}/app.conf.in\", to = \"{root}/run/app/app.conf\" }}\nmode = \"0640\"\n",
        root = tmp.0.display()
    )
}

fn each_verb_prepares_what_the_service_needs() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-verbs");
    template(&tmp);
    tmp.write(
        "app.conf.in",
        "host = ${DB_HOST}\nport = ${DB_PORT:-5432}\nprice = $$5\n",
    );
    let c = Setup::new("prep-verbs", &[("app", &steps(&tmp))]).start();
    c.wait_socket();
    wait_until("the service's start", 5 * SECOND, || {
        c.stdout().contains("app | started")
    });
    let ng = nogroup();
    // mkdir: mode and owner (the service's user by default).
    assert_eq!(owner(&tmp.path("run/app")), (NOBODY, ng));
    assert_eq!(mode(&tmp.path("run/app")), 0o750);
    // copy: modes and links kept, everything the service's.
    assert_eq!(tmp.read("data/seed.db"), "seed");
    assert_eq!(mode(&tmp.path("data/bin/tool")), 0o750);
    assert_eq!(
        std::fs::read_link(tmp.path("data/current")).unwrap(),
        Path::new("seed.db")
    );
    for p in [
        "data",
        "data/seed.db",
        "data/bin",
        "data/bin/tool",
        "data/current",
    ] {
        assert_eq!(owner(&tmp.path(p)), (NOBODY, ng), "{p}");
    }
    // render: variables, a default and a dollar; mode and owner.
    assert_eq!(
        tmp.read("run/app/app.conf"),
        "host = db.internal\nport = 5432\nprice = $5\n"
    );
    assert_eq!(mode(&tmp.path("run/app/app.conf")), 0o640);
    assert_eq!(owner(&tmp.path("run/app/app.conf")), (NOBODY, ng));
    assert!(
        c.stdout().contains("app | host = db.internal"),
        "the service read it"
    );
    // The notes are in the log, marked.
    let out = c.stdout();
    assert!(
        out.contains("app/prepare | mkdir ") && out.contains(": created (0750"),
        "{out}"
    );
    assert!(
        out.contains("app/prepare | copy to ") && out.contains(": copied 4 entries"),
        "{out}"
    );
    Ok(())
}

fn a_second_start_changes_nothing_and_a_volume_is_never_clobbered() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-again");
    template(&tmp);
    tmp.write("app.conf.in", "host = ${DB_HOST}\n");
    // A volume with data already: never written.
    let volume = tmp.path("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("mine.db"), "precious").unwrap();
    let service = format!(
        "{}[[prepare]]\ncopy = {{ from = \"{}\", to = \"{}\" }}\n",
        steps(&tmp),
        tmp.path("template").display(),
        volume.display()
    );
    let c = Setup::new("prep-again", &[("app", &service)]).start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    assert_eq!(tmp.read("volume/mine.db"), "precious");
    assert!(
        !volume.join("seed.db").exists(),
        "the template went into a non-empty volume"
    );
    assert!(c.stdout().contains("is not empty"), "{}", c.stdout());
    // The service changes its data; a restart runs the steps again and
    // keeps it.
    std::fs::write(tmp.path("data/seed.db"), "changed by the service").unwrap();
    let before = std::fs::metadata(tmp.path("data/bin/tool"))
        .unwrap()
        .mtime_nsec();
    let lines = c.stdout().lines().count();
    let out = c.svctl(&["restart", "app"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tmp.read("data/seed.db"), "changed by the service");
    assert_eq!(
        std::fs::metadata(tmp.path("data/bin/tool"))
            .unwrap()
            .mtime_nsec(),
        before
    );
    let again: Vec<String> = c.stdout().lines().skip(lines).map(String::from).collect();
    let notes: Vec<&String> = again
        .iter()
        .filter(|l| l.starts_with("app/prepare |"))
        .collect();
    // Nothing to create, copy or chown: only the skips are said.
    assert!(
        notes.iter().all(|l| l.contains("skipped")),
        "a second start changed something: {notes:?}"
    );
    assert_eq!(tmp.read("volume/mine.db"), "precious");
    Ok(())
}

fn a_link_planted_in_a_chowned_tree_is_not_followed() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-link");
    // A root-only file standing in for /etc/shadow, and a root-owned
    // directory standing in for /etc, outside the tree.
    let shadow = tmp.write("shadow", "root:secret\n");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    let etc = tmp.path("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root\n").unwrap();
    let data = tmp.path("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::os::unix::fs::symlink(&shadow, data.join("shadow")).unwrap();
    std::os::unix::fs::symlink(&etc, data.join("sub/etc")).unwrap();
    let c = Setup::new(
        "prep-link",
        &[(
            "app",
            &format!(
                "run = \"exec sleep 1000\"\nuser = \"nobody\"\n[[prepare]]\nchown = \"{}\"\n",
                data.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    let ng = nogroup();
    assert_eq!(owner(&data.join("sub")), (NOBODY, ng));
    // The links themselves changed hands; what they point at did not.
    assert_eq!(owner(&data.join("shadow")), (NOBODY, ng));
    assert_eq!(owner(&shadow), (0, 0), "the link was followed");
    assert_eq!(owner(&etc), (0, 0), "the link to a directory was followed");
    assert_eq!(owner(&etc.join("passwd")), (0, 0));
    drop(c);
    // Now the real one, the stand-ins having shown the walk is safe (and a
    // guard puts /etc/shadow back should it ever not be).
    let real = Path::new("/etc/shadow");
    if real.exists() {
        struct Restore((u32, u32));
        impl Drop for Restore {
            fn drop(&mut self) {
                let (u, g) = self.0;
                let _ = std::os::unix::fs::lchown("/etc/shadow", Some(u), Some(g));
            }
        }
        let before = owner(real);
        let _restore = Restore(before);
        std::os::unix::fs::symlink(real, data.join("etc-shadow")).unwrap();
        let c = Setup::new(
            "prep-link-real",
            &[(
                "app",
                &format!(
                    "run = \"exec sleep 1000\"\nuser = \"nobody\"\n[[prepare]]\nchown = \"{}\"\n",
                    data.display()
                ),
            )],
        )
        .start();
        c.wait_socket();
        c.wait_state("app", "running", 5 * SECOND);
        assert_eq!(owner(&data.join("etc-shadow")), (NOBODY, ng));
        assert_eq!(owner(real), before, "/etc/shadow changed hands");
    }
    // A tree that is itself a link is refused.
    let link = tmp.path("data-link");
    std::os::unix::fs::symlink(&etc, &link).unwrap();
    let c = Setup::new(
        "prep-link2",
        &[(
            "app",
            &format!(
                "run = \"exec sleep 1000\"\nuser = \"nobody\"\n[[prepare]]\nchown = \"{}\"\n",
                link.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("the refusal", 5 * SECOND, || {
        c.stderr()
            .contains("is a symbolic link; corral does not follow it")
    });
    assert_eq!(owner(&etc), (0, 0));
    Ok(())
}

fn a_render_error_names_the_template_line_and_fails_the_start() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-render");
    let template = tmp.write(
        "app.conf.in",
        "# settings\nhost = ${DB_HOST:-localhost}\npassword = ${DB_PASSWORD}\n",
    );
    let c = Setup::new(
        "prep-render",
        &[(
            "app",
            &format!(
                "run = \"exec sleep 1000\"\nrestart_limit = 1\n\n[[prepare]]\nrender = {{ from = \"{}\", to = \"{}\" }}\n",
                template.display(),
                tmp.path("app.conf").display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    let want = format!(
        "app: cannot start: prepare step 1 (render {}, {}:4): {}:3: ${{DB_PASSWORD}} is not set and has no default",
        tmp.path("app.conf").display(),
        c.services.join("app.toml").display(),
        template.display()
    );
    wait_until("the failed start", 5 * SECOND, || {
        c.stderr().contains(&want)
    });
    assert!(!tmp.path("app.conf").exists(), "half a file was written");
    // The restart policy applies: it is retried, then failed.
    c.wait_state("app", "failed", 10 * SECOND);
    let note = c.service("app")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("DB_PASSWORD"), "{note}");
    Ok(())
}

fn user_env_owns_what_is_prepared() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-userenv");
    let c = Setup::new(
        "prep-userenv",
        &[(
            "app",
            &format!(
                "run = \"touch {0}/data/written && exec sleep 1000\"\nuser = \"nobody\"\nuser_env = \"APP_UID\"\n\
                 [[prepare]]\nmkdir = \"{0}/data\"\n\
                 [[prepare]]\nmkdir = \"{0}/root-only\"\nowner = \"root\"\nmode = \"0700\"\n",
                tmp.0.display()
            ),
        )],
    )
    .env("APP_UID", "4321:4322")
    .start();
    c.wait_socket();
    c.wait_state("app", "running", 5 * SECOND);
    assert_eq!(owner(&tmp.path("data")), (4321, 4322));
    wait_until("the service's file", 5 * SECOND, || {
        tmp.path("data/written").exists()
    });
    assert_eq!(owner(&tmp.path("data/written")), (4321, 4322));
    assert_eq!(owner(&tmp.path("root-only")), (0, 0));
    assert_eq!(mode(&tmp.path("root-only")), 0o700);
    Ok(())
}

/// A read-only tmpfs mounted for the test, unmounted on drop.
struct ReadOnly(std::path::PathBuf);

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn a_read_only_file_system_is_a_clear_error() -> TestResult {
    require_pid_namespace()?;
    let tmp = open_dir("prep-ro");
    let ro = tmp.path("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro", "tmpfs"])
        .arg(&ro)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(Skip(format!(
                "cannot mount a read-only tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Err(e) => return Err(Skip(format!("cannot run mount: {e}"))),
    }
    let _mounted = ReadOnly(ro.clone());
    let c = Setup::new(
        "prep-ro",
        &[(
            "app",
            &format!(
                "run = \"exec sleep 1000\"\n[[prepare]]\nmkdir = \"{}/run\"\n",
                ro.display()
            ),
        )],
    )
    .start();
    c.wait_socket();
    wait_until("the error", 5 * SECOND, || {
        c.stderr().contains("Read-only file system")
    });
    let err = c.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("Read-only file system"))
        .unwrap();
    assert!(
        line.contains(&format!("prepare step 1 (mkdir {}/run", ro.display())),
        "{line}"
    );
    Ok(())
}

fn steps_run_as_a_non_root_corral() -> TestResult {
    require_pid_namespace()?;
    let setup = Setup::new("prep-nonroot", &[]).run_as(12345, 12345);
    let root = setup.dir.path("own");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(12345), Some(12345)).unwrap();
    std::fs::set_permissions(&setup.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    setup.dir.write(
        "services.d/app.toml",
        &format!(
            "run = \"exec sleep 1000\"\n[[prepare]]\nmkdir = \"{0}/run\"\n\
             [[prepare]]\nchown = \"{0}/run\"\nowner = \"root\"\n",
            root.display()
        ),
    );
    let xdg = setup.dir.path("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(12345), Some(12345)).unwrap();
    let c = setup
        .env("XDG_RUNTIME_DIR", &xdg.display().to_string())
        .start();
    // Its own user makes what it may: the directory is corral's uid's.
    wait_until("the directory", 10 * SECOND, || root.join("run").exists());
    assert_eq!(owner(&root.join("run")), (12345, 12345));
    // What it may not is a clear error, not a hang.
    wait_until("the refusal", 10 * SECOND, || {
        c.stderr().contains("prepare step 2 (chown ")
            && c.stderr().contains("Operation not permitted")
    });
    Ok(())
}
