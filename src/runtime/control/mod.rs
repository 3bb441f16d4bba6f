//! The control socket: accepts svctl connections, reads one request line
//! per connection, turns it into supervisor events, and answers, at once or
//! once the requested state is reached (a waiter with a deadline).
//! Everything is non-blocking; a slow or silent client never stalls the loop.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

pub mod access;
pub mod bind;
mod requests;

use super::facts::Facts;
use super::output::Output;
use super::throttle::Throttle;
use super::{Kind, token};
use crate::config::units::parse_signal;
use crate::json::{self, ToJson};
use crate::logs::Stream;
use crate::logs::ring::Entry;
use crate::logs::time::rfc3339;
use crate::proto::{
    Chunk, ErrorKind, LogLine, Request, Response, ServiceStatus, Verb, decode_request,
};
use crate::supervisor::{Event, Goal, Progress, ServiceId, Supervisor};
use access::{Access, Policy};
pub use requests::Plan;

/// Largest request accepted; svctl's are a few hundred bytes.
const MAX_REQUEST: usize = 64 * 1024;

/// Connections served at once; idle ones make room for new ones.
const MAX_CLIENTS: usize = 256;

/// Of those, the ones only root and corral's own uid may take: members of
/// the control group cannot fill every slot with `svctl wait` and lock
/// root out of `status` and `shutdown`.
const RESERVED_FOR_FULL: usize = 32;

/// Connections one uid without full access may hold at once.
const PER_UID: usize = 32;

/// Time a client may leave its answer unread before it is dropped (a
/// follower that was cut off and never reads, a wedged svctl).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a client has to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Unsent output a log follower may have before it is cut off.
const FOLLOW_LIMIT: usize = 1024 * 1024;

/// One svctl connection.
struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// A request was read; further input is ignored.
    answered: bool,
    /// `svctl logs -f`: stays open after its answer, for these services
    /// (all when empty).
    follows: Option<Vec<ServiceId>>,
    /// `svctl action`: stays open for the action's output until its end.
    streaming: bool,
    /// `svctl events`: stays open for the events of these services (all
    /// when empty) until the client goes away.
    watches: Option<Vec<String>>,
    /// What the peer may do; `None`: refused, answered and closed.
    access: Option<Access>,
    /// Who the peer is (uid, pid), for messages.
    peer: Option<(u32, i32)>,
    /// A client that has not sent its request by then is dropped.
    request_by: Instant,
    /// Since when its output waits for the client to read; dropped after
    /// `WRITE_TIMEOUT`.
    stalled_since: Option<Instant>,
}

impl Client {
    fn full(&self) -> bool {
        self.access == Some(Access::Full)
    }
}

/// A request waiting for services to reach a state.
struct Waiter {
    client: u64,
    goals: Vec<(ServiceId, Goal)>,
    deadline: Instant,
    timeout: Duration,
    /// Said before the outcome (a reload's plan).
    prefix: Option<String>,
}

impl Waiter {
    /// `message`, after the prefix if there is one.
    fn said(&self, message: String) -> String {
        match &self.prefix {
            Some(p) => format!("{p}\n{message}"),
            None => message,
        }
    }
}

/// What a client's input amounted to.
pub enum Input {
    /// Nothing complete yet.
    Nothing,
    /// The client went away.
    Closed,
    Request(Request),
}

/// The listening socket, its clients and their waiters.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    clients: HashMap<u64, Client>,
    waiters: Vec<Waiter>,
    next_id: u64,
    /// A spare descriptor, given up to accept and drop a connection when
    /// the process is out of descriptors (EMFILE), so the listener does not
    /// stay readable forever.
    spare: Option<File>,
    policy: Policy,
    /// Refused and evicted connections, logged at most every
    /// `throttle::EVERY`.
    refusals: Throttle,
    evictions: Throttle,
    /// Requests read, by verb (`invalid`: not decodable), for metrics.
    requests: std::collections::BTreeMap<&'static str, u64>,
}

impl Control {
    /// A control socket on `listener` (bound at `path`, non-blocking).
    fn serve(listener: UnixListener, path: &Path, policy: Policy) -> Control {
        Control {
            listener,
            path: path.to_path_buf(),
            clients: HashMap::new(),
            waiters: Vec::new(),
            next_id: 0,
            spare: File::open("/dev/null").ok(),
            policy,
            refusals: Throttle::default(),
            evictions: Throttle::default(),
            requests: std::collections::BTreeMap::new(),
        }
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accepts every pending connection and watches each for input.
    pub fn accept(&mut self, epoll: &Epoll) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    // A refused peer is answered once its request is in:
                    // closing at once would fail its write, not say why.
                    let peer = access::peer_of(&stream);
                    let granted = peer.as_ref().and_then(|p| self.policy.decide(p));
                    if let Err(why) = self.make_room(granted, peer.as_ref(), epoll) {
                        self.refuse(stream, &why, peer.as_ref());
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    let interest = EpollEvent::new(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                        token(Kind::Client, id),
                    );
                    if let Err(e) = epoll.add(&stream, interest) {
                        warn!("control socket: cannot watch a client: {e}");
                        continue;
                    }
                    self.clients.insert(
                        id,
                        Client {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            answered: false,
                            follows: None,
                            streaming: false,
                            watches: None,
                            access: granted,
                            peer: peer.map(|p| (p.uid, p.pid)),
                            request_by: Instant::now() + REQUEST_TIMEOUT,
                            stalled_since: None,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(nix::libc::EMFILE) => {
                    // Idle clients give their descriptors up first, so root
                    // still gets in; only when none is idle is the
                    // connection taken with the spare and closed.
                    if self.evict(epoll, |c| !c.answered) {
                        warn!("control socket: out of file descriptors; dropped an idle client");
                        continue;
                    }
                    warn!("control socket: out of file descriptors; refusing a connection");
                    self.spare = None;
                    let _ = self.listener.accept();
                    self.spare = File::open("/dev/null").ok();
                    break;
                }
                Err(e) => {
                    warn!("control socket: accept: {e}");
                    break;
                }
            }
        }
    }

    /// Finds a slot for a new connection with `access`. Root and corral's
    /// own uid always get one while anyone with less access holds a slot;
    /// others share what is not reserved, `PER_UID` per uid.
    fn make_room(
        &mut self,
        access: Option<Access>,
        peer: Option<&access::Peer>,
        epoll: &Epoll,
    ) -> Result<(), String> {
        if access == Some(Access::Full) {
            if self.clients.len() < MAX_CLIENTS
                || self.evict(epoll, |c| !c.answered)
                || self.evict(epoll, |c| !c.full())
            {
                return Ok(());
            }
            return Err(format!(
                "too many connections ({MAX_CLIENTS}), all busy; try again"
            ));
        }
        let limited = self.clients.values().filter(|c| !c.full()).count();
        let uid = peer.map(|p| p.uid);
        let same_uid = self
            .clients
            .values()
            .filter(|c| !c.full() && c.peer.map(|p| p.0) == uid)
            .count();
        if same_uid >= PER_UID {
            return Err(format!(
                "too many connections from uid {} ({PER_UID}); close some and try again",
                uid.map_or("?".into(), |u| u.to_string())
            ));
        }
        if limited < MAX_CLIENTS - RESERVED_FOR_FULL
            && (self.clients.len() < MAX_CLIENTS || self.evict(epoll, |c| !c.answered && !c.full()))
        {
            return Ok(());
        }
        Err(format!(
            "too many connections ({} in use, {RESERVED_FOR_FULL} kept for root); try again",
            self.clients.len()
        ))
    }

    /// Answers a connection that gets no slot, and logs it (rate-limited).
    fn refuse(&mut self, mut stream: UnixStream, why: &str, peer: Option<&access::Peer>) {
        let mut line = json::to_vec(&Response::error(ErrorKind::Failed, why));
        line.push(b'\n');
        let _ = stream.write(&line);
        let who = peer.map_or("an unknown peer".to_string(), |p| {
            format!("uid {} (pid {})", p.uid, p.pid)
        });
        self.refusals.warn(Instant::now(), || {
            format!("control socket: refused a connection from {who}: {why}")
        });
    }

    /// Drops the oldest client that `which` selects, telling it why if it
    /// was waiting for an answer. `false` when there is none.
    fn evict(&mut self, epoll: &Epoll, which: impl Fn(&Client) -> bool) -> bool {
        let oldest = self
            .clients
            .iter()
            .filter(|(_, c)| which(c))
            .min_by_key(|(id, _)| **id)
            .map(|(id, _)| *id);
        let Some(id) = oldest else {
            return false;
        };
        if let Some(c) = self.clients.get_mut(&id)
            && c.answered
        {
            let mut line = json::to_vec(&Response::error(
                ErrorKind::Failed,
                "dropped: corral needed the connection slot for root (or its own user); try again",
            ));
            line.push(b'\n');
            let _ = c.stream.write(&line);
        }
        let n = self.clients.len();
        let what = if self.clients.get(&id).is_some_and(|c| c.answered) {
            "a client waiting for an answer"
        } else {
            "the oldest idle one"
        };
        self.evictions.warn(Instant::now(), || {
            format!("control socket: {n} connections; dropping {what} to make room")
        });
        self.drop_client(id, epoll);
        true
    }

    /// Reads from a client. A complete line is decoded; a malformed one is
    /// answered with an error here. Once a request is in, only a hang-up is
    /// watched for (EPOLLHUP is always reported), so a client waiting for
    /// its answer costs no wakeups.
    pub fn read(&mut self, id: u64, epoll: &Epoll) -> Input {
        let Some(c) = self.clients.get_mut(&id) else {
            return Input::Closed;
        };
        let mut buf = [0u8; 4096];
        let mut eof = false;
        while !c.answered && c.input.len() <= MAX_REQUEST {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => c.input.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let line_end = c.input.iter().position(|&b| b == b'\n');
        match line_end {
            Some(end) if !c.answered => {
                c.answered = true;
                let line = c.input.get(..end).unwrap_or_default().to_vec();
                c.input = Vec::new();
                let mut hangup_only = EpollEvent::new(EpollFlags::empty(), token(Kind::Client, id));
                let _ = epoll.modify(&c.stream, &mut hangup_only);
                let decoded = decode_request(&line);
                let verb = decoded.as_ref().map_or("invalid", |r| r.verb.name());
                *self.requests.entry(verb).or_default() += 1;
                match decoded {
                    Ok(req) => Input::Request(req),
                    Err(msg) => {
                        self.reply(id, Response::error(ErrorKind::BadRequest, msg), epoll);
                        Input::Nothing
                    }
                }
            }
            _ if eof || c.answered => {
                self.drop_client(id, epoll);
                Input::Closed
            }
            _ if c.input.len() > MAX_REQUEST => {
                self.reply(
                    id,
                    Response::error(
                        ErrorKind::BadRequest,
                        "request too long: svctl requests are one short JSON line",
                    ),
                    epoll,
                );
                Input::Nothing
            }
            _ => Input::Nothing,
        }
    }

    /// Queues the response and writes what the socket takes now; the rest
    /// goes out when the socket is writable again.
    pub fn reply(&mut self, id: u64, response: Response, epoll: &Epoll) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        c.answered = true;
        // Straight into the output buffer: a status of 500 services is
        // some 140 KB, not worth copying twice. Room for it first (a
        // service takes about 280 bytes): grown by doubling, the buffer
        // was copied a dozen times over on the way.
        if let Response::Ok { services, .. } = &response {
            c.output.reserve(services.len() * 320);
        }
        response.write_json(&mut c.output);
        c.output.push(b'\n');
        self.flush(id, epoll);
    }

    /// Writes pending output; closes the connection once all is written,
    /// else waits for EPOLLOUT.
    pub fn flush(&mut self, id: u64, epoll: &Epoll) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        while !c.output.is_empty() {
            match c.stream.write(&c.output) {
                Ok(n) => {
                    c.output.drain(..n);
                    c.stalled_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.stalled_since.get_or_insert_with(Instant::now);
                    let mut interest =
                        EpollEvent::new(EpollFlags::EPOLLOUT, token(Kind::Client, id));
                    if epoll.modify(&c.stream, &mut interest).is_ok() {
                        return;
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_client(id, epoll);
                    return;
                }
            }
        }
        if c.follows.is_some() || c.streaming || c.watches.is_some() {
            // Everything written: back to watching for the hang-up only.
            let mut hangup_only = EpollEvent::new(EpollFlags::empty(), token(Kind::Client, id));
            let _ = epoll.modify(&c.stream, &mut hangup_only);
        } else {
            self.drop_client(id, epoll);
        }
    }

    /// Requests read so far, by verb, sorted.
    pub fn request_counts(&self) -> Vec<(&'static str, u64)> {
        self.requests.iter().map(|(v, n)| (*v, *n)).collect()
    }

    /// Forgets a client and its waiter, closing the connection.
    pub fn drop_client(&mut self, id: u64, epoll: &Epoll) {
        if let Some(c) = self.clients.remove(&id) {
            let _ = epoll.delete(&c.stream);
        }
        self.waiters.retain(|w| w.client != id);
    }

    /// The earliest waiter, request or write deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let idle = self
            .clients
            .values()
            .filter(|c| !c.answered)
            .map(|c| c.request_by);
        let stalled = self
            .clients
            .values()
            .filter_map(|c| Some(c.stalled_since? + WRITE_TIMEOUT));
        self.waiters
            .iter()
            .map(|w| w.deadline)
            .chain(idle)
            .chain(stalled)
            .min()
    }

    /// Drops clients that sent no request in time, and clients that left
    /// their answer unread for `WRITE_TIMEOUT`.
    pub fn expire(&mut self, now: Instant, epoll: &Epoll) {
        let late: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                (!c.answered && c.request_by <= now)
                    || c.stalled_since.is_some_and(|t| t + WRITE_TIMEOUT <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            // A stream reader that stalled is the same case as one that fell
            // `FOLLOW_LIMIT` behind, reached first when events or lines come
            // slowly: the operator gets the same warning either way.
            match self.clients.get(&id) {
                Some(c) if c.watches.is_some() => {
                    warn!("svctl events reads too slowly; cutting it off")
                }
                Some(c) if c.follows.is_some() => {
                    warn!("svctl logs -f reads too slowly; cutting it off")
                }
                _ => debug!(
                    "control socket: dropping a client that sent nothing or read nothing in time"
                ),
            }
            self.drop_client(id, epoll);
        }
    }
}

impl Control {
    /// Whether any client follows the logs.
    pub fn has_followers(&self) -> bool {
        self.clients.values().any(|c| c.follows.is_some())
    }

    /// Sends fresh lines to every follower that wants them. A follower
    /// whose unsent output passes `FOLLOW_LIMIT` is cut off with a message:
    /// a slow reader never holds corral or the services.
    pub fn broadcast(&mut self, fresh: &[(ServiceId, Entry)], out: &Output, epoll: &Epoll) {
        if fresh.is_empty() {
            return;
        }
        let ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.follows.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            let wanted = c.follows.clone().unwrap_or_default();
            let lines: Vec<LogLine> = fresh
                .iter()
                .filter(|(s, _)| wanted.is_empty() || wanted.contains(s))
                .filter_map(|(s, e)| Some(log_line(out.ring(*s)?.0, e)))
                .collect();
            if lines.is_empty() {
                continue;
            }
            if c.output.len() > FOLLOW_LIMIT {
                warn!("svctl logs -f reads too slowly; cutting it off");
                c.follows = None;
                self.cut_off(id, "the logs", epoll);
                continue;
            }
            let mut line = json::to_vec(&Response::Logs { lines });
            line.push(b'\n');
            c.output.extend_from_slice(&line);
            self.flush(id, epoll);
        }
    }
}

impl Control {
    /// The client's connection stays open for an action's output, which
    /// `stream` sends, until `end_stream` answers how it ended.
    pub fn begin_stream(&mut self, client: u64) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.streaming = true;
        }
    }

    /// Sends a piece of an action's output.
    pub fn stream(&mut self, client: u64, stream: Stream, bytes: &[u8], epoll: &Epoll) {
        let Some(c) = self.clients.get_mut(&client).filter(|c| c.streaming) else {
            return;
        };
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let mut line = json::to_vec(&Response::Output(Chunk::new(name, bytes)));
        line.push(b'\n');
        c.output.extend_from_slice(&line);
        self.flush(client, epoll);
    }

    /// Bytes written for the client that it has not read yet; `None` once
    /// it is gone.
    pub fn unsent(&self, client: u64) -> Option<usize> {
        self.clients.get(&client).map(|c| c.output.len())
    }

    /// The last answer of a stream; the connection closes once it is out.
    pub fn end_stream(&mut self, client: u64, response: Response, epoll: &Epoll) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.streaming = false;
        }
        self.reply(client, response, epoll);
    }
}

impl Control {
    /// Ends a stream whose reader fell `FOLLOW_LIMIT` behind, saying so.
    fn cut_off(&mut self, id: u64, what: &str, epoll: &Epoll) {
        if let Some(c) = self.clients.get_mut(&id) {
            // The front may be the rest of a line partly written: finish
            // that line, so the message starts a line of its own.
            let partial = c
                .output
                .iter()
                .position(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            c.output.truncate(partial);
        }
        self.reply(
            id,
            Response::error(
                ErrorKind::Failed,
                format!("cut off: reading too slowly to keep up with {what}"),
            ),
            epoll,
        );
    }

    /// Whether any client listens to events.
    pub fn has_listeners(&self) -> bool {
        self.clients.values().any(|c| c.watches.is_some())
    }

    /// Sends an event to every listener that wants it. One that falls
    /// `FOLLOW_LIMIT` behind is cut off: events never wait for a reader.
    pub fn publish(&mut self, line: &crate::proto::EventLine, epoll: &Epoll) {
        let ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.watches.as_ref().is_some_and(|names| {
                    names.is_empty()
                        || line
                            .service
                            .as_ref()
                            .is_some_and(|s| names.iter().any(|n| n == s))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let mut bytes = json::to_vec(&Response::Event(Box::new(line.clone())));
        bytes.push(b'\n');
        for id in ids {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            if c.output.len() > FOLLOW_LIMIT {
                warn!("svctl events reads too slowly; cutting it off");
                c.watches = None;
                self.cut_off(id, "the events", epoll);
                continue;
            }
            c.output.extend_from_slice(&bytes);
            self.flush(id, epoll);
        }
    }
}

fn log_line(service: &str, e: &Entry) -> LogLine {
    LogLine {
        time: rfc3339(e.time),
        service: service.to_string(),
        stream: match e.stream {
            Stream::Stdout => "stdout".into(),
            Stream::Stderr => "stderr".into(),
        },
        line: String::from_utf8_lossy(&e.text).into_owned(),
        continued: e.continued,
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // An abstract socket leaves nothing behind.
        if crate::cli::abstract_name(&self.path).is_none() {
            debug!("removing {}", self.path.display());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
