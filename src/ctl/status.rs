//! `svctl status` for people and scripts (the table and `--names`): the
//! answer is read into one buffer and only what is printed is parsed, its
//! strings borrowed from that buffer. Everything else in the answer
//! (users, actions, health output, counters) is skipped unparsed; `--json`
//! goes through the protocol's full types instead.

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::render::table;
use super::{EXIT_OK, Failure, print_error, shown};
use crate::json::Reader;
use crate::proto::{ErrorKind, LastExit, ScheduleStatus, ServiceStatus, Verb};

/// One service as the status table shows it.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub name: Cow<'a, str>,
    pub state: Cow<'a, str>,
    pub kind: Cow<'a, str>,
    pub ready: bool,
    pub ready_ms: Option<u64>,
    pub health: Option<Cow<'a, str>>,
    pub pid: Option<i32>,
    pub uptime_ms: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub note: Option<Cow<'a, str>>,
    pub status_text: Option<Cow<'a, str>>,
    pub schedule: Option<Cow<'a, ScheduleStatus>>,
}

impl<'a> Row<'a> {
    /// The printed keys of one service of the answer, as they come; its
    /// strings borrow from the answer's text where they have no escapes,
    /// and the keys the table does not print are skipped unbuilt.
    fn read(r: &mut Reader<'a>) -> Result<Row<'a>, String> {
        let mut row = Row {
            name: Cow::Borrowed(""),
            state: Cow::Borrowed(""),
            kind: Cow::Borrowed(""),
            ready: false,
            ready_ms: None,
            health: None,
            pid: None,
            uptime_ms: None,
            restarts: 0,
            last_exit: None,
            note: None,
            status_text: None,
            schedule: None,
        };
        let mut named = false;
        r.object(|r, key| {
            let text = |r: &mut Reader<'a>| r.text().map(Option::unwrap_or_default);
            match key.as_ref() {
                "name" => {
                    row.name = text(r)?;
                    named = true;
                }
                "state" => row.state = text(r)?,
                "kind" => row.kind = text(r)?,
                "ready" => row.ready = r.get()?,
                "ready_ms" => row.ready_ms = r.get()?,
                "health" => row.health = r.text()?,
                "pid" => row.pid = r.get()?,
                "uptime_ms" => row.uptime_ms = r.get()?,
                "restarts" => row.restarts = r.get()?,
                "last_exit" => row.last_exit = r.get()?,
                "note" => row.note = r.text()?,
                "status_text" => row.status_text = r.text()?,
                "schedule" => row.schedule = r.get::<Option<ScheduleStatus>>()?.map(Cow::Owned),
                _ => r.skip()?,
            }
            Ok(())
        })?;
        if !named {
            return Err("a service without `name`".into());
        }
        Ok(row)
    }
}

impl<'a> From<&'a ServiceStatus> for Row<'a> {
    fn from(s: &'a ServiceStatus) -> Row<'a> {
        let text = |t: &'a Option<String>| t.as_deref().map(Cow::Borrowed);
        Row {
            name: Cow::Borrowed(&s.name),
            state: Cow::Borrowed(&s.state),
            kind: Cow::Borrowed(&s.kind),
            ready: s.ready,
            ready_ms: s.ready_ms,
            health: text(&s.health),
            pid: s.pid,
            uptime_ms: s.uptime_ms,
            restarts: s.restarts,
            last_exit: s.last_exit,
            note: text(&s.note),
            status_text: text(&s.status_text),
            schedule: s.schedule.as_ref().map(Cow::Borrowed),
        }
    }
}

/// The answer to a status request: `ok` with services, or `error`; only
/// the keys the table or the error needs are read.
#[derive(Debug)]
struct Answer<'a> {
    result: Cow<'a, str>,
    services: Vec<Row<'a>>,
    kind: Option<ErrorKind>,
    message: Option<String>,
}

impl<'a> Answer<'a> {
    fn read(text: &'a str) -> Result<Answer<'a>, String> {
        let mut answer = Answer {
            result: Cow::Borrowed(""),
            services: Vec::new(),
            kind: None,
            message: None,
        };
        let mut r = Reader::new(text);
        r.object(|r, key| {
            match key.as_ref() {
                "result" => answer.result = r.text()?.unwrap_or_default(),
                "services" => r.array(|r| {
                    answer.services.push(Row::read(r)?);
                    Ok(())
                })?,
                "kind" => answer.kind = r.get()?,
                "message" => answer.message = r.get()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        r.end()?;
        Ok(answer)
    }
}

/// Asks for the status of `verb`'s services and prints their names
/// (`names_only`) or the table. Returns svctl's exit code.
pub(super) fn run(
    socket: &Path,
    discovered: bool,
    verb: &Verb,
    names_only: bool,
    timeout: Duration,
) -> Result<i32, Failure> {
    let reader = super::send(socket, discovered, verb, timeout)?;
    let text = read_answer(reader.into_inner(), socket, timeout)?;
    let answer = Answer::read(&text)
        .map_err(|e| Failure::from(format!("unreadable answer from corral: {e}")))?;
    let tty_out = std::io::IsTerminal::is_terminal(&std::io::stdout());
    match (answer.result.as_ref(), answer.kind) {
        ("ok", _) => {
            if names_only {
                let mut out = String::new();
                for s in &answer.services {
                    out.push_str(&shown(&s.name, tty_out));
                    out.push('\n');
                }
                print!("{out}");
            } else {
                print!("{}", shown(&table(&answer.services), tty_out));
            }
            Ok(EXIT_OK)
        }
        ("error", Some(kind)) => Ok(print_error(
            verb,
            kind,
            answer.message.as_deref().unwrap_or_default(),
        )),
        (other, _) => Err(Failure::from(format!(
            "unreadable answer from corral: result `{other}` to a status request"
        ))),
    }
}

/// The answer line, read straight from the socket into one buffer (no
/// line reader copying it a second time). Reading stops at the first
/// newline, whatever a peer sends after it: corral closes the connection
/// right after a status answer, but the line is all svctl needs, so it
/// does not wait for the end of the stream.
fn read_answer(mut stream: UnixStream, socket: &Path, timeout: Duration) -> Result<String, String> {
    // One page: the answer about one service (about 280 bytes) needs no
    // more, and each page zeroed is a page fault. Full, it grows eightfold,
    // so the answer about 100 services takes two reads (std's
    // read_to_end from a 4 KiB buffer took six) and 500 three.
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    // memchr's word-at-a-time searcher, not memchr::memchr: that one's
    // first call asks the CPU what it has (cpuid), which traps to the
    // hypervisor in a VM (35-45 us measured on this machine's, more than
    // the whole scan). A byte loop cost 4 instructions a byte, 10% of
    // the client's for 100 services.
    let newline = memchr::arch::all::memchr::One::new(b'\n');
    let end = loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 8, 0);
        }
        match stream.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break filled,
            Ok(n) => {
                let fresh = buf.get(filled..filled + n).unwrap_or_default();
                if let Some(at) = newline.find(fresh) {
                    break filled + at;
                }
                filled += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(super::answer_error(&e, socket, timeout)),
        }
    };
    buf.truncate(end);
    if buf.is_empty() {
        return Err(format!(
            "corral at {} closed the connection without answering",
            socket.display()
        ));
    }
    String::from_utf8(buf).map_err(|e| format!("unreadable answer from corral: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_parses_what_the_table_prints_and_skips_the_rest() {
        let full = ServiceStatus {
            name: "web \"main\"".into(),
            state: "running".into(),
            pid: Some(42),
            uptime_ms: Some(61_000),
            restarts: 2,
            last_exit: Some(LastExit::Signal(9)),
            enabled: true,
            user: Some("www-data".into()),
            note: None,
            kind: "longrun".into(),
            ready: true,
            ready_ms: Some(1500),
            health: Some("healthy".into()),
            health_output: Some("ok".into()),
            status_text: Some("serving".into()),
            dropped_lines: 3,
            file_lost_lines: 0,
            schedule: None,
            actions: vec!["reload".into()],
        };
        let wire = crate::json::to_vec(&crate::proto::Response::Ok {
            services: vec![full.clone()],
            message: None,
        });
        let answer = Answer::read(std::str::from_utf8(&wire).unwrap()).unwrap();
        assert_eq!(answer.result, "ok");
        assert_eq!(answer.services.len(), 1);
        // The lean row renders exactly what the full status renders.
        assert_eq!(table(&answer.services), table(&[Row::from(&full)]));
        // A name without escapes is borrowed from the buffer, not copied.
        let plain =
            Answer::read(r#"{"result":"ok","services":[{"name":"db","state":"stopped","kind":"oneshot","ready":false,"ready_ms":null,"health":null,"pid":null,"uptime_ms":null,"restarts":0,"last_exit":null,"note":null,"status_text":null,"new_field":[1,{"x":2}]}]}"#)
                .unwrap();
        assert!(matches!(plain.services[0].name, Cow::Borrowed("db")));
    }

    #[test]
    fn the_answer_ends_at_its_newline_whatever_follows() {
        use std::io::Write;
        let path = Path::new("/test.sock");
        let t = Duration::from_millis(200);
        // Closed after the line and some trailing bytes.
        let (mut peer, ours) = UnixStream::pair().unwrap();
        peer.write_all(b"{\"result\":\"ok\"}\ntrailing").unwrap();
        drop(peer);
        assert_eq!(read_answer(ours, path, t).unwrap(), r#"{"result":"ok"}"#);
        // Left open after the line: the line once the read times out.
        let (mut peer, ours) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(t)).unwrap();
        peer.write_all(b"{\"result\":\"ok\"}\n").unwrap();
        assert_eq!(read_answer(ours, path, t).unwrap(), r#"{"result":"ok"}"#);
        // Left open without a line: the timeout is the error.
        let (mut peer, ours) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(t)).unwrap();
        peer.write_all(b"{\"result\"").unwrap();
        assert!(
            read_answer(ours, path, t)
                .unwrap_err()
                .contains("no answer")
        );
        // Longer than the first buffer and its first growth (100 KB, the
        // answer about some 350 services), written while it is read.
        let long = format!("{{\"result\":\"{}\"}}", "x".repeat(100_000));
        let (mut peer, ours) = UnixStream::pair().unwrap();
        let sent = format!("{long}\ntrailing");
        let writer = std::thread::spawn(move || peer.write_all(sent.as_bytes()));
        assert_eq!(read_answer(ours, path, t).unwrap(), long);
        // The reader is gone once the line is read: the rest may not fit.
        let _ = writer.join().unwrap();
        // Closed without a byte.
        let (peer, ours) = UnixStream::pair().unwrap();
        drop(peer);
        assert!(
            read_answer(ours, path, t)
                .unwrap_err()
                .contains("without answering")
        );
    }

    #[test]
    fn an_error_answer_keeps_its_kind_and_message() {
        let wire = crate::json::to_vec(&crate::proto::Response::error(
            ErrorKind::BadRequest,
            "unknown service `x` (known: a, b)",
        ));
        let answer = Answer::read(std::str::from_utf8(&wire).unwrap()).unwrap();
        assert_eq!(answer.result, "error");
        assert_eq!(answer.kind, Some(ErrorKind::BadRequest));
        assert_eq!(
            answer.message.as_deref(),
            Some("unknown service `x` (known: a, b)")
        );
        assert!(answer.services.is_empty());
    }
}
