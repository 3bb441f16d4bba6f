//! Service output under a real PID 1: formats byte for byte, cut lines,
//! no loss behind a slow reader with bounded memory, drop mode, the ring
//! through svctl logs (-n and -f), and rotated log files.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::*;

pub const TESTS: &[Test] = crate::tests![
    formats_are_byte_exact,
    long_lines_are_cut_with_a_marker,
    slow_reader_loses_nothing_and_memory_stays_bounded,
    drop_mode_counts_what_it_drops,
    svctl_logs_shows_the_ring_and_follows,
    log_file_rotates_with_owner_and_sizes,
    slow_follower_is_cut_off,
];

/// Lines of `text` without the RFC 3339 stamp and one space in front.
fn without_time(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((t, rest))
                if t.len() == 24 && t.ends_with('Z') && t.as_bytes().get(10) == Some(&b'T') =>
            {
                rest.to_string()
            }
            _ => format!("NO TIME: {l}"),
        })
        .collect()
}

fn formats_are_byte_exact() -> TestResult {
    require_pid_namespace()?;
    let mut c = Setup::new(
        "formats",
        &[
            ("pre", "run = \"echo 'a  b'; echo err >&2\"\nrestart = \"never\"\n"),
            ("js", "run = \"printf '%s\\\\n' 'say \\\"hi\\\"'; printf 'bad \\\\377 byte\\\\n' >&2\"\nrestart = \"never\"\n[log]\nformat = \"json\"\n"),
            ("rw", "run = \"echo raw line\"\nrestart = \"never\"\n[log]\nformat = \"raw\"\n"),
            ("ts", "run = \"echo stamped\"\nrestart = \"never\"\n[log]\ntimestamps = true\n"),
            (
                "inh",
                r#"run = '[ "$(readlink /proc/$$/fd/1)" = "$(readlink /proc/1/fd/1)" ] && echo straight || echo piped'
restart = "never"
[log]
format = "inherit"
"#,
            ),
        ],
    )
    .start();
    c.wait_socket();
    for s in ["pre", "js", "rw", "ts", "inh"] {
        c.wait_state(s, "exited", 5 * SECOND);
    }
    c.signal(Signal::SIGTERM);
    c.wait_exit(5 * SECOND);
    let out = c.stdout();
    let err = c.stderr();
    assert!(out.contains("pre | a  b\n"), "{out}");
    assert!(err.contains("pre | err\n"), "stderr stays stderr: {err}");
    assert!(
        out.contains("\nraw line\n") || out.starts_with("raw line\n"),
        "{out}"
    );
    assert!(
        out.contains("\nstraight\n") || out.starts_with("straight\n"),
        "inherit: unprefixed: {out}"
    );
    let ts: Vec<String> = without_time(&out)
        .into_iter()
        .filter(|l| l.contains("stamped"))
        .collect();
    assert_eq!(ts, ["ts  | stamped"], "{out}");
    let json_out: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(json_out.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(json_out[0]).unwrap();
    assert_eq!(v["service"], "js");
    assert_eq!(v["stream"], "stdout");
    assert_eq!(v["line"], "say \"hi\"");
    let t = json_out[0];
    let expected_tail = ",\"service\":\"js\",\"stream\":\"stdout\",\"line\":\"say \\\"hi\\\"\"}";
    assert!(
        t.starts_with("{\"time\":\"") && t.ends_with(expected_tail),
        "{t}"
    );
    let json_err: Vec<&str> = err.lines().filter(|l| l.starts_with('{')).collect();
    let v: serde_json::Value = serde_json::from_str(json_err[0]).unwrap();
    assert_eq!(
        v["line"], "bad \\xff byte",
        "invalid UTF-8 is escaped, not dropped"
    );
    Ok(())
}

fn long_lines_are_cut_with_a_marker() -> TestResult {
    require_pid_namespace()?;
    // 70,000 bytes on one line, then a last line without a newline.
    let svc = "run = \"head -c 70000 /dev/zero | tr '\\\\0' x; echo; printf tail\"\nrestart = \"never\"\n";
    let mut c = Setup::new("long", &[("big", svc)]).start();
    c.wait_socket();
    c.wait_state("big", "exited", 5 * SECOND);
    c.signal(Signal::SIGTERM);
    c.wait_exit(5 * SECOND);
    let out = c.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "two pieces and the tail");
    let first = format!("big | {} [continued]", "x".repeat(65536));
    assert_eq!(lines[0], first);
    assert_eq!(lines[1], format!("big | {}", "x".repeat(70000 - 65536)));
    assert_eq!(lines[2], "big | tail");
    Ok(())
}

fn slow_reader_loses_nothing_and_memory_stays_bounded() -> TestResult {
    require_pid_namespace()?;
    const N: usize = 200_000;
    let svc = format!("run = \"seq 1 {N}\"\nrestart = \"never\"\n");
    let mut c = Setup::new("slow", &[("flood", &svc)]).start_with(|cmd| {
        cmd.stdout(Stdio::piped());
    });
    let mut pipe = c.take_stdout().unwrap();
    // A slow reader: small reads with pauses, for the first second or so.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..100 {
        let n = pipe.read(&mut buf).unwrap();
        data.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Meanwhile corral is not stuck: it answers.
    c.wait_socket();
    assert!(
        c.service("flood")["state"] == "running",
        "the service waits on its writes"
    );
    let rss = c.peak_rss_kib();
    // Then read the rest.
    let reader = std::thread::spawn(move || {
        pipe.read_to_end(&mut data).unwrap();
        data
    });
    c.wait_state("flood", "exited", 60 * SECOND);
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(10 * SECOND), 0);
    let data = reader.join().unwrap();
    let text = String::from_utf8(data).unwrap();
    let numbers: Vec<usize> = text
        .lines()
        .filter_map(|l| l.strip_prefix("flood | "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), N, "no line lost");
    assert!(
        numbers.iter().enumerate().all(|(i, &n)| n == i + 1),
        "in order"
    );
    assert!(rss < 16 * 1024, "corral's peak RSS {rss} KiB while blocked");
    Ok(())
}

fn drop_mode_counts_what_it_drops() -> TestResult {
    require_pid_namespace()?;
    const N: usize = 200_000;
    let svc = format!("run = \"seq 1 {N}\"\nrestart = \"never\"\n[log]\non_full = \"drop\"\n");
    let mut c = Setup::new("drop", &[("flood", &svc)]).start_with(|cmd| {
        cmd.stdout(Stdio::piped());
    });
    let pipe = c.take_stdout().unwrap();
    // Nobody reads until the service is done: it must not wait.
    c.wait_socket();
    let s = c.wait_state("flood", "exited", 30 * SECOND);
    let dropped = s["dropped_lines"].as_u64().unwrap();
    assert!(dropped > 0, "{s}");
    c.signal(Signal::SIGTERM);
    let reader = std::thread::spawn(move || BufReader::new(pipe).lines().count());
    assert_eq!(c.wait_exit(10 * SECOND), 0);
    let printed = reader.join().unwrap() as u64;
    assert_eq!(
        printed + dropped,
        N as u64,
        "every line either printed or counted"
    );
    Ok(())
}

fn svctl_logs_shows_the_ring_and_follows() -> TestResult {
    require_pid_namespace()?;
    let svc = "run = \"trap 'echo got HUP' HUP; for i in 1 2 3 4 5 6 7; do echo line $i; done; echo oops >&2; while :; do sleep 0.02; done\"\n[log]\nring_lines = 5\n";
    let c = Setup::new(
        "ring",
        &[
            ("db", svc),
            ("other", "run = \"echo other line; exec sleep 1000\"\n"),
        ],
    )
    .start();
    c.wait_socket();
    wait_until("output", 5 * SECOND, || c.stderr().contains("db    | oops"));
    let out = c.svctl(&["logs", "db"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = without_time(&text);
    assert_eq!(
        lines,
        [
            "db | line 4",
            "db | line 5",
            "db | line 6",
            "db | line 7",
            "db | oops"
        ],
        "the ring keeps 5"
    );
    let out = c.svctl(&["logs", "-n", "2", "db"]);
    assert_eq!(
        without_time(&String::from_utf8_lossy(&out.stdout)),
        ["db | line 7", "db | oops"]
    );
    // -n counts per service: one line each of db and other.
    let out = c.svctl(&["logs", "-n", "1", "db", "other"]);
    let both = without_time(&String::from_utf8_lossy(&out.stdout));
    assert!(
        both.len() == 2
            && both.iter().any(|l| l.starts_with("db"))
            && both.iter().any(|l| l.starts_with("other")),
        "{both:?}"
    );
    let out = c.svctl(&["logs", "-n", "1000"]);
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        all.contains("other | other line") && all.contains("db | line 4"),
        "{all}"
    );
    // -f: the backlog, then new lines as they come.
    let mut follower = Command::new(svctl_link())
        .arg("--socket")
        .arg(&c.socket)
        .args(["logs", "-f", "-n", "1", "db"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().ends_with("db | oops"));
    assert!(c.svctl(&["signal", "HUP", "db"]).status.success());
    let next = lines.next().unwrap().unwrap();
    assert!(next.ends_with("db | got HUP"), "{next}");
    let _ = follower.kill();
    let _ = follower.wait();
    // The dropped follower does not disturb corral.
    assert_eq!(c.service("db")["state"], "running");
    Ok(())
}

fn log_file_rotates_with_owner_and_sizes() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("rotate");
    let file = tmp.path("var/log/app/current");
    // 300 lines of 50 bytes: 15,000 bytes through a 4 KiB limit.
    let svc = format!(
        "run = \"for i in $(seq 1 300); do printf '%049d\\\\n' $i; done\"\nrestart = \"never\"\nuser = \"nobody\"\n[log]\nfile = \"{}\"\nmax_size = \"4KiB\"\nkeep = 2\nformat = \"raw\"\n",
        file.display()
    );
    let c = Setup::new("rotate", &[("app", &svc)]).start();
    c.wait_socket();
    c.wait_state("app", "exited", 5 * SECOND);
    let numbered = |n: u32| std::path::PathBuf::from(format!("{}.{n}", file.display()));
    for p in [file.clone(), numbered(1), numbered(2)] {
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(
            meta.len() <= 4096,
            "{} is {} bytes",
            p.display(),
            meta.len()
        );
        assert_eq!(
            meta.uid(),
            65534,
            "{} owned by the service's user",
            p.display()
        );
    }
    assert!(!numbered(3).exists(), "keep = 2");
    assert_eq!(
        std::fs::metadata(file.parent().unwrap()).unwrap().uid(),
        65534,
        "directories too"
    );
    // The newest lines are in `current`, whole, and the rotated files full.
    let current = std::fs::read_to_string(&file).unwrap();
    assert!(current.ends_with(&format!("{:049}\n", 300)), "{current}");
    assert_eq!(
        std::fs::metadata(numbered(1)).unwrap().len(),
        4050,
        "81 whole lines per file"
    );
    // Both file and console output are on.
    assert!(c.stdout().contains(&format!("{:049}\n", 300)));
    Ok(())
}

fn slow_follower_is_cut_off() -> TestResult {
    require_pid_namespace()?;
    let tmp = TempDir::new("slowfollow");
    let go = tmp.path("go");
    // After the go signal, 4 MB of output: more than a stuck follower may hold.
    let svc = format!(
        "run = \"while [ ! -e {} ]; do sleep 0.02; done; seq 1 500000; exec sleep 1000\"\n[log]\nring_lines = 10\n",
        go.display()
    );
    let c = Setup::new("slowfollow", &[("chatty", &svc)]).start_with(|cmd| {
        cmd.stdout(Stdio::null());
    });
    c.wait_socket();
    // A follower whose own stdout is a pipe nobody reads: it stops reading
    // the socket once that pipe is full.
    let mut follower = Command::new(svctl_link())
        .arg("--socket")
        .arg(&c.socket)
        .args(["logs", "-f", "chatty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&go, "").unwrap();
    wait_until("the follower to be cut off", 30 * SECOND, || {
        c.stderr().contains("cutting it off")
    });
    // The service was not slowed down to the follower's pace: it finished.
    wait_until("all 500000 lines", 30 * SECOND, || {
        c.svctl(&["logs", "-n", "1", "chatty"])
            .stdout
            .ends_with(b"chatty | 500000\n")
    });
    // Once it reads again, the follower gets whole lines and then the
    // reason on a line of its own (it was spliced into a line once, which
    // svctl could not parse).
    let mut out = follower.stdout.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = follower.wait().unwrap();
    let _ = drain.join();
    assert!(
        err.contains("cut off: reading too slowly") && !err.contains("unreadable answer"),
        "{err}"
    );
    assert_eq!(status.code(), Some(1), "{err}");
    Ok(())
}
