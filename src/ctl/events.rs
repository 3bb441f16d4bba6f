//! `svctl events [--json] [NAME...]`: prints every event corral sends, a
//! line each, until corral closes the connection or svctl is interrupted.
//! `--json` prints corral's lines as they are (JSON lines, stable); the
//! human form is `TIME SERVICE EVENT details`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use super::{EXIT_FAILED, EXIT_OK, error_code, open_stream, read_response, shown};
use crate::proto::{EventLine, LastExit, Response, Verb};

pub(super) fn run(
    socket: &Path,
    discovered: bool,
    verb: &Verb,
    json: bool,
    timeout: Duration,
) -> i32 {
    // Events come when they happen: wait as long as it takes.
    let mut reader = match open_stream(socket, discovered, verb, timeout) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    loop {
        match read_response(&mut reader, socket, timeout) {
            Ok(Some(Response::Event(e))) => {
                let text = if json {
                    crate::json::to_string(&e)
                } else {
                    shown(&human(&e), tty).into_owned()
                };
                let mut out = stdout.lock();
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    return EXIT_OK;
                }
            }
            Ok(Some(Response::Error { kind, message })) => {
                eprintln!(
                    "svctl: {}",
                    shown(&message, std::io::stderr().is_terminal())
                );
                return error_code(kind);
            }
            Ok(None) => return EXIT_OK,
            Ok(Some(_)) => {
                eprintln!("svctl: unexpected answer from corral to events");
                return EXIT_FAILED;
            }
            Err(e) => {
                eprintln!("svctl: {e}");
                return EXIT_FAILED;
            }
        }
    }
}

/// `2026-12-02T08:00:00.123Z web state running -> stopping (restarting)`.
fn human(e: &EventLine) -> String {
    let mut line = format!(
        "{} {} {}",
        e.time,
        e.service.as_deref().unwrap_or("-"),
        e.event
    );
    if let (Some(from), Some(to)) = (&e.from, &e.to) {
        line.push_str(&format!(" {from} -> {to}"));
    } else if let Some(to) = &e.to {
        line.push_str(&format!(" {to}"));
    }
    if let Some(pid) = e.pid {
        line.push_str(&format!(" pid {pid}"));
    }
    match e.exit {
        Some(LastExit::Code(c)) => line.push_str(&format!(" exit code {c}")),
        Some(LastExit::Signal(n)) => line.push_str(&format!(" killed by signal {n}")),
        None => {}
    }
    if let Some(ms) = e.ready_ms {
        line.push_str(&format!(" in {ms} ms"));
    }
    if let Some(h) = &e.health {
        line.push_str(&format!(" {h}"));
    }
    if let Some(a) = &e.action {
        line.push_str(&format!(" {a}"));
    }
    if let Some(c) = e.code {
        line.push_str(&format!(" exit code {c}"));
    }
    for detail in [&e.output, &e.note].into_iter().flatten() {
        line.push_str(&format!(" ({detail})"));
    }
    if let Some(plan) = &e.plan {
        line.push_str(&format!(": {}", plan.join("; ")));
    }
    line
}
