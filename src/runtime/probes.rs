//! Ready and health checks that corral runs itself: a file that must
//! exist, a TCP connect (and the greeting it must start with), an HTTP GET
//! that must answer 2xx or 3xx, a command that must exit 0. File checks
//! answer at once; network checks step through connect, request and
//! answer in the event loop, never blocking on the peer; commands are
//! helper processes (`helpers`), done when the reaper collects them. At
//! most one check per service and purpose is in flight; the supervisor
//! owns every timing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6, connect, getsockopt,
    send, socket, sockopt,
};
use nix::unistd::read;

use super::helpers::Helpers;
use super::{Kind, token};
use crate::config::ServiceSpec;
use crate::config::probes::{Probe, ReadyMethod};
use crate::supervisor::{Event, ProbeResult, Purpose, ServiceId};

/// Bytes of a server's answer read at most: a status line or a greeting
/// is decided well within this; a server that sends more without a line
/// break has failed the check.
const ANSWER: usize = 1024;

/// A TCP or HTTP check in flight.
struct Net {
    socket: OwnedFd,
    addr: SocketAddr,
    talk: Talk,
    phase: Phase,
    /// What the server sent so far (at most `ANSWER` bytes).
    got: Vec<u8>,
}

/// What a network check does once connected.
enum Talk {
    /// Nothing: the connect is the check.
    Connect,
    /// Read the greeting; it must start with these bytes.
    Expect(Vec<u8>),
    /// Send the request (`sent` bytes of it are out), then read the status
    /// line.
    Http { request: Vec<u8>, sent: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
}

/// Where a network check stands after a step.
enum Step {
    /// Waiting for the socket to become ready for this.
    Wait(EpollFlags),
    /// Finished: passed or not, and why.
    Done(bool, String),
}

/// A network check in flight: a non-blocking socket, watched for what
/// the current step waits on.
struct Check {
    run: u64,
    net: Net,
}

/// All network checks in flight.
#[derive(Default)]
pub struct Probes {
    checks: HashMap<(ServiceId, Purpose), Check>,
}

/// The token id of a check's socket: the service and purpose packed.
fn probe_token(id: ServiceId, purpose: Purpose) -> u64 {
    token(
        Kind::Probe,
        id.bits() << 2 | (purpose == Purpose::Health) as u64,
    )
}

/// The inverse of `probe_token`'s id part.
pub fn untoken(id: u64) -> (ServiceId, Purpose) {
    let purpose = if id & 1 == 1 {
        Purpose::Health
    } else {
        Purpose::Ready
    };
    (ServiceId::from_bits(id >> 2), purpose)
}

impl Probes {
    /// Starts the check of `spec` for `purpose`. Returns the result when it
    /// is known at once.
    pub fn start(
        &mut self,
        (id, run, purpose): (ServiceId, u64, Purpose),
        spec: &ServiceSpec,
        helpers: &mut Helpers,
        epoll: &Epoll,
    ) -> Option<Event> {
        self.cancel(id, purpose, helpers, epoll);
        let probe = match purpose {
            Purpose::Ready => match spec.ready.as_ref().map(|r| &r.method) {
                Some(ReadyMethod::Poll(p)) => p,
                _ => return None,
            },
            Purpose::Health => &spec.health.as_ref()?.probe,
        };
        let done = |ok: bool, output: String| {
            Some(Event::ProbeDone(ProbeResult {
                id,
                run,
                purpose,
                ok,
                output,
            }))
        };
        match probe {
            Probe::File(path) => match std::fs::symlink_metadata(path) {
                Ok(_) => done(true, format!("{} exists", path.display())),
                Err(e) => done(false, format!("{}: {e}", path.display())),
            },
            Probe::Tcp { addr, expect } => {
                let talk = match expect {
                    None => Talk::Connect,
                    Some(e) => Talk::Expect(e.as_bytes().to_vec()),
                };
                self.start_net(id, run, purpose, *addr, talk, epoll)
            }
            Probe::Http(h) => {
                let talk = Talk::Http {
                    request: h.request(),
                    sent: 0,
                };
                self.start_net(id, run, purpose, h.addr, talk, epoll)
            }
            Probe::Exec(argv) => match helpers.start_check((id, run, purpose), spec, argv, epoll) {
                Ok(()) => None,
                Err(e) => done(false, e),
            },
        }
    }

    /// A check's descriptor is ready: a command printed (or closed its
    /// output), or a connect finished one way or the other.
    pub fn on_ready(&mut self, token_id: u64, epoll: &Epoll) -> Option<Event> {
        let (id, purpose) = untoken(token_id);
        let Check { run, net } = self.checks.get_mut(&(id, purpose))?;
        let run = *run;
        let (ok, output) = match net.advance() {
            Step::Wait(flags) => {
                let mut interest = EpollEvent::new(flags, probe_token(id, purpose));
                match epoll.modify(&net.socket, &mut interest) {
                    Ok(()) => return None,
                    Err(e) => (false, format!("cannot watch the connection: {e}")),
                }
            }
            Step::Done(ok, output) => (ok, output),
        };
        if let Some(Check { net, .. }) = self.checks.remove(&(id, purpose)) {
            let _ = epoll.delete(&net.socket);
        }
        Some(Event::ProbeDone(ProbeResult {
            id,
            run,
            purpose,
            ok,
            output,
        }))
    }

    /// Opens the connection of a network check; the rest happens in
    /// `on_ready`, starting with EPOLLOUT (the connect finished).
    fn start_net(
        &mut self,
        id: ServiceId,
        run: u64,
        purpose: Purpose,
        addr: SocketAddr,
        talk: Talk,
        epoll: &Epoll,
    ) -> Option<Event> {
        let failed = |output: String| {
            Some(Event::ProbeDone(ProbeResult {
                id,
                run,
                purpose,
                ok: false,
                output,
            }))
        };
        let socket = match start_connect(addr) {
            Ok(socket) => socket,
            Err(e) => return failed(format!("connect {addr}: {e}")),
        };
        let interest = EpollEvent::new(EpollFlags::EPOLLOUT, probe_token(id, purpose));
        if let Err(e) = epoll.add(&socket, interest) {
            return failed(format!("cannot watch the connect: {e}"));
        }
        self.checks.insert(
            (id, purpose),
            Check {
                run,
                net: Net {
                    socket,
                    addr,
                    talk,
                    phase: Phase::Connecting,
                    got: Vec::new(),
                },
            },
        );
        None
    }

    /// Abandons a check: kills a command (and its group), drops a connect.
    pub fn cancel(
        &mut self,
        id: ServiceId,
        purpose: Purpose,
        helpers: &mut Helpers,
        epoll: &Epoll,
    ) {
        helpers.cancel_check(id, purpose);
        if let Some(Check { net, .. }) = self.checks.remove(&(id, purpose)) {
            let _ = epoll.delete(&net.socket);
        }
    }
}

fn start_connect(addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let socket = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let result = match addr {
        SocketAddr::V4(a) => connect(socket.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => connect(socket.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    match result {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e.into()),
    }
}

impl Net {
    /// Goes as far as the socket allows without waiting: connect result,
    /// request out, answer in.
    fn advance(&mut self) -> Step {
        loop {
            match self.phase {
                Phase::Connecting => {
                    match getsockopt(&self.socket, sockopt::SocketError) {
                        Ok(0) => {}
                        Ok(err) => {
                            let e = Errno::from_raw(err);
                            return Step::Done(
                                false,
                                format!("connect {}: {}", self.addr, e.desc()),
                            );
                        }
                        Err(e) => return Step::Done(false, format!("connect {}: {e}", self.addr)),
                    }
                    self.phase = match self.talk {
                        Talk::Connect => {
                            return Step::Done(true, format!("connected to {}", self.addr));
                        }
                        Talk::Expect(_) => Phase::Receiving,
                        Talk::Http { .. } => Phase::Sending,
                    };
                }
                Phase::Sending => {
                    let Talk::Http { request, sent } = &mut self.talk else {
                        self.phase = Phase::Receiving;
                        continue;
                    };
                    let rest = request.get(*sent..).unwrap_or_default();
                    if rest.is_empty() {
                        self.phase = Phase::Receiving;
                        continue;
                    }
                    match send(
                        self.socket.as_raw_fd(),
                        rest,
                        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(n) => *sent += n,
                        Err(Errno::EINTR) => {}
                        Err(Errno::EAGAIN) => return Step::Wait(EpollFlags::EPOLLOUT),
                        Err(e) => {
                            return Step::Done(false, format!("sending the request: {}", e.desc()));
                        }
                    }
                }
                Phase::Receiving => {
                    let mut buf = [0u8; ANSWER];
                    let room = ANSWER.saturating_sub(self.got.len());
                    let eof = match read(&self.socket, buf.get_mut(..room).unwrap_or_default()) {
                        Ok(0) => true,
                        Ok(n) => {
                            self.got.extend_from_slice(buf.get(..n).unwrap_or_default());
                            false
                        }
                        Err(Errno::EINTR) => continue,
                        Err(Errno::EAGAIN) => return Step::Wait(EpollFlags::EPOLLIN),
                        Err(e) => {
                            return Step::Done(false, format!("reading the answer: {}", e.desc()));
                        }
                    };
                    let full = eof || self.got.len() >= ANSWER;
                    let verdict = match &self.talk {
                        Talk::Expect(want) => greeting(want, &self.got, full),
                        Talk::Http { .. } => status_line(&self.got, full),
                        Talk::Connect => Some((true, format!("connected to {}", self.addr))),
                    };
                    if let Some((ok, why)) = verdict {
                        return Step::Done(ok, why);
                    }
                }
            }
        }
    }
}

/// Whether a greeting that starts with `got` passes for `want`, once that
/// is known: as soon as it differs or is long enough, or at the end.
fn greeting(want: &[u8], got: &[u8], end: bool) -> Option<(bool, String)> {
    let n = want.len().min(got.len());
    let agrees = got.get(..n) == want.get(..n);
    if agrees && got.len() < want.len() && !end {
        return None;
    }
    if got.is_empty() {
        return Some((
            false,
            "closed the connection before sending anything".into(),
        ));
    }
    let first = printable(first_line(got));
    if agrees && got.len() >= want.len() {
        Some((true, format!("greeted with {first}")))
    } else {
        Some((
            false,
            format!(
                "expected a greeting starting with {}, got {first}",
                printable(want)
            ),
        ))
    }
}

/// The verdict on an HTTP answer that starts with `got`, once its status
/// line is complete (or the answer ended): 2xx and 3xx pass.
fn status_line(got: &[u8], end: bool) -> Option<(bool, String)> {
    if !got.contains(&b'\n') && !end {
        return None;
    }
    if got.is_empty() {
        return Some((false, "closed the connection without an answer".into()));
    }
    let line = first_line(got);
    let text = String::from_utf8_lossy(line);
    let mut words = text.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/") && (100..=999).contains(&code) => {
            let reason: String = words
                .next()
                .unwrap_or_default()
                .chars()
                .take(100)
                .flat_map(char::escape_debug)
                .collect();
            Some((
                (200..400).contains(&code),
                format!("HTTP {code} {reason}").trim_end().to_string(),
            ))
        }
        _ => Some((false, format!("not an HTTP answer: {}", printable(line)))),
    }
}

/// Up to the first line break.
fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = bytes.get(..end).unwrap_or(bytes);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A server's bytes as a quoted string fit for a log line: control
/// characters escaped, at most 100 characters.
fn printable(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).chars().take(100).collect();
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_judged_as_soon_as_they_can_be() {
        // Too short to tell yet; then enough; then a different start.
        assert_eq!(greeting(b"220", b"2", false), None);
        assert_eq!(
            greeting(b"220", b"220 mail ESMTP\r\n", false),
            Some((true, "greeted with \"220 mail ESMTP\"".into()))
        );
        assert_eq!(
            greeting(b"220", b"5", false),
            Some((
                false,
                "expected a greeting starting with \"220\", got \"5\"".into()
            ))
        );
        assert_eq!(
            greeting(b"* OK", b"* O", true),
            Some((
                false,
                "expected a greeting starting with \"* OK\", got \"* O\"".into()
            ))
        );
        assert_eq!(
            greeting(b"220", b"", true),
            Some((
                false,
                "closed the connection before sending anything".into()
            ))
        );
        // Control characters from the server are escaped, not printed.
        assert_eq!(
            greeting(b"220", b"554 \x1b[2J\n", false),
            Some((
                false,
                "expected a greeting starting with \"220\", got \"554 \\u{1b}[2J\"".into()
            ))
        );
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 O", false), None);
        assert_eq!(
            status_line(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false),
            Some((true, "HTTP 200 OK".into()))
        );
        assert_eq!(
            status_line(b"HTTP/1.0 302 Found\r\n", false),
            Some((true, "HTTP 302 Found".into()))
        );
        assert_eq!(
            status_line(b"HTTP/1.1 503 Service Unavailable\r\n", false),
            Some((false, "HTTP 503 Service Unavailable".into()))
        );
        assert_eq!(
            status_line(b"HTTP/1.1 204\r\n", false),
            Some((true, "HTTP 204".into()))
        );
        assert_eq!(
            status_line(b"HTTP/1.1 101 Switching Protocols\r\n", false),
            Some((false, "HTTP 101 Switching Protocols".into()))
        );
        assert_eq!(
            status_line(b"SSH-2.0-OpenSSH_9.2\r\n", false),
            Some((false, "not an HTTP answer: \"SSH-2.0-OpenSSH_9.2\"".into()))
        );
        assert_eq!(
            status_line(b"HTTP/1.1 200 OK", true),
            Some((true, "HTTP 200 OK".into()))
        );
        assert_eq!(
            status_line(b"", true),
            Some((false, "closed the connection without an answer".into()))
        );
    }
}
