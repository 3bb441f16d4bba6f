//! `svctl action SERVICE NAME [ARGS...]`: sends the request, writes the
//! action's output to svctl's own stdout and stderr as it comes (byte for
//! byte: a dump piped to a file arrives whole), and exits with the
//! action's exit code.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use super::{EXIT_FAILED, error_code, open_stream, read_response, shown};
use crate::proto::{Response, Verb};

/// Runs the action; returns svctl's exit code.
pub(super) fn run(socket: &Path, discovered: bool, verb: &Verb, timeout: Duration) -> i32 {
    // The action's own `timeout` bounds it, and corral answers when it
    // ends: wait as long as it runs.
    let mut reader = match open_stream(socket, discovered, verb, timeout) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    // A reader that went away (`| head`) gets nothing more, but svctl
    // still waits for the exit code.
    let (mut out_open, mut err_open) = (true, true);
    let tty_err = stderr.is_terminal();
    loop {
        match read_response(&mut reader, socket, timeout) {
            Ok(Some(Response::Output(chunk))) => {
                let Some(bytes) = chunk.bytes() else {
                    eprintln!("svctl: unreadable output from corral (bad base64)");
                    continue;
                };
                let (sink, open): (&mut dyn Write, &mut bool) = if chunk.stream == "stderr" {
                    (&mut stderr, &mut err_open)
                } else {
                    (&mut stdout, &mut out_open)
                };
                if *open && (sink.write_all(&bytes).is_err() || sink.flush().is_err()) {
                    *open = false;
                }
            }
            Ok(Some(Response::Exited { code, message })) => {
                if let Some(m) = message {
                    if code == 0 {
                        println!("{}", shown(&m, stdout.is_terminal()));
                    } else {
                        eprintln!("svctl: {}", shown(&m, tty_err));
                    }
                }
                return code;
            }
            Ok(Some(Response::Error { kind, message })) => {
                eprintln!("svctl: {}", shown(&message, tty_err));
                return error_code(kind);
            }
            Ok(Some(
                Response::Ok { .. }
                | Response::Logs { .. }
                | Response::Inspect(_)
                | Response::Actions { .. }
                | Response::Event(_),
            )) => {
                eprintln!("svctl: unexpected answer from corral to an action");
                return EXIT_FAILED;
            }
            Ok(None) => {
                eprintln!(
                    "svctl: corral at {} closed the connection before the action ended",
                    socket.display()
                );
                return EXIT_FAILED;
            }
            Err(e) => {
                eprintln!("svctl: {e}");
                return EXIT_FAILED;
            }
        }
    }
}
