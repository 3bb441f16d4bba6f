//! The metrics endpoint (`CORRAL_METRICS`): `GET /metrics` over TCP or a
//! Unix socket, served by the event loop like the control socket. One
//! request per connection (`Connection: close`): a scrape every few seconds
//! does not need keep-alive, and a connection that only ever answers once
//! cannot be held open to pile requests up. Everything is bounded: the
//! connections, the request head, the time to send it and the time the
//! answer may wait to be read. A full table drops the oldest connection
//! that has not sent its request, so silent clients never lock a scraper
//! out; none of it ever blocks the loop.

pub mod process;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{MsgFlags, recv, send};

use super::throttle::Throttle;
use super::{Kind, token};
use crate::cli::MetricsAddr;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 32;

/// Largest request head (request line and headers); Prometheus sends a
/// few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Time a connection has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Time an answer may wait for the client to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a complete request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The exposition; without its body for HEAD.
    Metrics { body: bool },
    /// An error status, with a short plain-text reason.
    Refuse(u16),
}

/// One connection.
struct Conn {
    fd: OwnedFd,
    input: Vec<u8>,
    /// The answer, once the request is in, and how much of it is sent.
    output: Option<(Vec<u8>, usize)>,
    /// Dropped at this time: the request's deadline, then the answer's.
    deadline: Instant,
}

pub struct Metrics {
    listener: Listener,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    /// Given up to take and close a connection when out of descriptors.
    spare: Option<File>,
    evictions: Throttle,
}

impl Metrics {
    /// Listens at `addr` and watches the listener. A Unix socket left by
    /// an earlier run is replaced; any other file there is not.
    pub fn bind(addr: &MetricsAddr, epoll: &Epoll) -> io::Result<Metrics> {
        let listener = match addr {
            MetricsAddr::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Listener::Tcp(l)
            }
            MetricsAddr::Unix(path) => {
                replace_stale_socket(path)?;
                let l = super::control::bind::bind_with_mode(path, 0o666, None)?;
                l.set_nonblocking(true)?;
                // Read-only figures; who may connect is the directory's
                // business (like a Prometheus exporter's port).
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                Listener::Unix(l)
            }
        };
        epoll.add(
            listener.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::MetricsListener, 0)),
        )?;
        Ok(Metrics {
            listener,
            conns: HashMap::new(),
            next_id: 0,
            spare: File::open("/dev/null").ok(),
            evictions: Throttle::default(),
        })
    }

    /// Takes every pending connection, making room when the table is full.
    pub fn accept(&mut self, epoll: &Epoll) {
        loop {
            match self
                .listener
                .accept()
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            {
                Ok(fd) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        self.evict_oldest(epoll);
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    let interest = EpollEvent::new(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                        token(Kind::MetricsClient, id),
                    );
                    if epoll.add(&fd, interest).is_err() {
                        continue;
                    }
                    self.conns.insert(
                        id,
                        Conn {
                            fd,
                            input: Vec::new(),
                            output: None,
                            deadline: Instant::now() + REQUEST_TIMEOUT,
                        },
                    );
                }
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(Errno::EMFILE | Errno::ENFILE) => {
                    if !self.conns.is_empty() {
                        self.evict_oldest(epoll);
                        continue;
                    }
                    // Take the connection with the spare and close it, so
                    // the listener does not stay readable forever.
                    self.spare = None;
                    let _ = self.listener.accept();
                    self.spare = File::open("/dev/null").ok();
                    break;
                }
                Err(_) => break,
            }
        }
    }

    /// The oldest connection still sending its request goes first; when
    /// every one is being answered, the oldest of those.
    fn evict_oldest(&mut self, epoll: &Epoll) {
        let oldest = |reading: bool| {
            self.conns
                .iter()
                .filter(|(_, c)| c.output.is_none() == reading)
                .map(|(id, _)| *id)
                .min()
        };
        if let Some(id) = oldest(true).or_else(|| oldest(false)) {
            let n = self.conns.len();
            self.evictions.warn(Instant::now(), || {
                format!("metrics: {n} connections open; dropping the oldest to make room")
            });
            self.close(id, epoll);
        }
    }

    /// Reads what connection `id` sent, or writes more of its answer. A
    /// complete request head is returned for the runtime to answer with
    /// `answer` (the metrics) or answered here (an error).
    pub fn on_ready(&mut self, id: u64, flags: EpollFlags, epoll: &Epoll) -> Option<Ask> {
        let conn = self.conns.get_mut(&id)?;
        if conn.output.is_some() {
            self.flush(id, epoll);
            return None;
        }
        let mut buf = [0u8; 2048];
        let mut closed = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
        while conn.input.len() <= MAX_HEAD {
            match recv(conn.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn
                    .input
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        match parse_head(&conn.input) {
            Some(Ask::Metrics { body }) => Some(Ask::Metrics { body }),
            Some(Ask::Refuse(status)) => {
                self.respond(
                    id,
                    status,
                    "text/plain; charset=utf-8",
                    refusal(status),
                    true,
                    epoll,
                );
                None
            }
            None if closed => {
                self.close(id, epoll);
                None
            }
            None => None,
        }
    }

    /// Sends `body` as the answer to connection `id`'s request.
    pub fn answer(&mut self, id: u64, body: String, with_body: bool, epoll: &Epoll) {
        self.respond(
            id,
            200,
            crate::exposition::CONTENT_TYPE,
            body,
            with_body,
            epoll,
        );
    }

    fn respond(
        &mut self,
        id: u64,
        status: u16,
        content_type: &str,
        body: String,
        with_body: bool,
        epoll: &Epoll,
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let allow = if status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            reason(status),
            body.len()
        )
        .into_bytes();
        if with_body {
            out.extend_from_slice(body.as_bytes());
        }
        conn.output = Some((out, 0));
        conn.input = Vec::new();
        conn.deadline = Instant::now() + WRITE_TIMEOUT;
        self.flush(id, epoll);
    }

    /// Writes what the socket takes; closes once all is sent, else waits
    /// for EPOLLOUT.
    fn flush(&mut self, id: u64, epoll: &Epoll) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((out, sent)) = &mut conn.output else {
            return;
        };
        while *sent < out.len() {
            let rest = out.get(*sent..).unwrap_or_default();
            match send(
                conn.fd.as_raw_fd(),
                rest,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => *sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut interest =
                        EpollEvent::new(EpollFlags::EPOLLOUT, token(Kind::MetricsClient, id));
                    if epoll.modify(&conn.fd, &mut interest).is_ok() {
                        return;
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        self.close(id, epoll);
    }

    fn close(&mut self, id: u64, epoll: &Epoll) {
        if let Some(c) = self.conns.remove(&id) {
            let _ = epoll.delete(&c.fd);
        }
    }

    /// Drops connections past their deadline.
    pub fn expire(&mut self, now: Instant, epoll: &Epoll) {
        let late: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.close(id, epoll);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }
}

/// Everything a scrape shows, as of now.
pub fn snapshot(
    sup: &crate::supervisor::Supervisor,
    output: &super::output::Output,
    control: Option<&super::control::Control>,
) -> crate::exposition::Snapshot {
    let mut services = sup.samples();
    for s in &mut services {
        if let Some(id) = sup.services().lookup(&s.name) {
            s.log_lines = output.lines(id);
            (s.log_dropped, s.log_file_lost) = output.dropped(id);
        }
    }
    crate::exposition::Snapshot {
        services,
        orphans_reaped: sup.orphans_reaped(),
        requests: control.map(|c| c.request_counts()).unwrap_or_default(),
        process: process::sample(),
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// A TCP or Unix listener; its connections are plain descriptors.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The next connection, non-blocking and close-on-exec.
    fn accept(&self) -> io::Result<OwnedFd> {
        let fd: OwnedFd = match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(true)?;
                s.into()
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(true)?;
                s.into()
            }
        };
        Ok(fd)
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
        }
    }
}

/// Removes a socket left at `path` by an earlier run; refuses to touch
/// anything else.
fn replace_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a socket; choose another path or remove it",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What the request head in `input` asks for; `None` while incomplete.
pub fn parse_head(input: &[u8]) -> Option<Ask> {
    let end = find(input, b"\r\n\r\n").or_else(|| find(input, b"\n\n"));
    let Some(end) = end.filter(|&e| e <= MAX_HEAD) else {
        return (input.len() > MAX_HEAD).then_some(Ask::Refuse(431));
    };
    let head = input.get(..end)?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Ask::Refuse(400));
    };
    if !version.starts_with(b"HTTP/1.") {
        return Some(Ask::Refuse(400));
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path != b"/metrics" {
        return Some(Ask::Refuse(404));
    }
    Some(match method {
        b"GET" => Ask::Metrics { body: true },
        b"HEAD" => Ask::Metrics { body: false },
        _ => Ask::Refuse(405),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// The body of an error answer: what to do instead.
fn refusal(status: u16) -> String {
    match status {
        404 => "corral serves its metrics at /metrics only\n",
        405 => "GET or HEAD /metrics\n",
        431 => "request head too large (8 KiB at most)\n",
        _ => "not an HTTP/1 request; GET /metrics\n",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_path_then_method() {
        let ask = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ask::Metrics { body: true })
        );
        assert_eq!(
            ask("GET /metrics?name[]=up HTTP/1.0\n\n"),
            Some(Ask::Metrics { body: true })
        );
        assert_eq!(
            ask("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Some(Ask::Metrics { body: false })
        );
        assert_eq!(
            ask("POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Ask::Refuse(405))
        );
        assert_eq!(ask("GET / HTTP/1.1\r\n\r\n"), Some(Ask::Refuse(404)));
        assert_eq!(ask("DELETE /x HTTP/1.1\r\n\r\n"), Some(Ask::Refuse(404)));
        assert_eq!(ask("GET /metrics\r\n\r\n"), Some(Ask::Refuse(400)));
        assert_eq!(ask("GET /metrics SSH-2.0\r\n\r\n"), Some(Ask::Refuse(400)));
        // Incomplete, then too long to ever be a head.
        assert_eq!(ask("GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Some(Ask::Refuse(431))
        );
        // Complete, but past the limit: refused the same, however it was read.
        let long = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(ask(&long), Some(Ask::Refuse(431)));
    }
}
