//! Service output: one pipe per stream per process. Every line goes to the
//! service's ring (for `svctl logs`), its log file if it has one, live
//! followers, and corral's stdout or stderr in the chosen format.
//!
//! Nothing here blocks the event loop: the console sinks are non-blocking
//! with a queue. Each service may have at most `QUEUE_LIMIT` bytes queued;
//! beyond that corral stops reading its pipe (`on_full = "block"`, the
//! service then waits on its own writes, nothing is lost) or reads and
//! drops lines for the console, counting them (`on_full = "drop"`). So
//! memory stays bounded however much services write.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::unistd::{pipe2, read};

use super::logfile::LogFile;
use super::sink::Sink;
use super::{Kind, token};
use crate::config::ServiceSpec;
use crate::logs::format::{Record, render};
use crate::logs::lines::Splitter;
use crate::logs::ring::{Entry, Ring};
use crate::logs::time::rfc3339;
use crate::logs::{Format, OnFull, Stream};
use crate::supervisor::ServiceId;

/// Bytes one service may have waiting for the console before corral stops
/// reading it (or drops).
pub const QUEUE_LIMIT: usize = 64 * 1024;

/// What one read of a relay pipe takes at most.
const READ_SIZE: usize = 64 * 1024;

/// Lines kept for live followers between two turns of the loop.
const FRESH_LIMIT: usize = 10_000;

/// Console settings that apply unless a service's `[log]` says otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub format: Format,
    pub timestamps: bool,
}

/// The read end of one service pipe.
struct Relay {
    service: ServiceId,
    stream: Stream,
    fd: OwnedFd,
    splitter: Splitter,
    /// Not read until the service's queue has room again.
    paused: bool,
    /// A helper's pipe (an action's): its lines are marked with this
    /// (`web/validate`) instead of the service's name, and kept out of the
    /// service's ring.
    label: Option<String>,
    /// What it reads is also handed, byte for byte, to this tap (the svctl
    /// that runs the action); see `take_taps`.
    tap: Option<u64>,
    /// Not read while the tap's reader is behind (`hold`).
    held: bool,
}

/// Bytes one relay read for a tap.
pub struct Tapped {
    pub tap: u64,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// Per-service log state.
struct ServiceLog {
    name: String,
    format: Format,
    timestamps: bool,
    on_full: OnFull,
    ring: Ring,
    file: Option<LogFile>,
    /// Bytes of this service waiting in each console sink (stdout,
    /// stderr): a full stdout must not hold up or drop stderr lines.
    queued: [usize; 2],
    /// Lines the console never got: dropped (`on_full = "drop"`) or lost
    /// to a broken sink.
    dropped: u64,
    /// Lines read from stdout and stderr (metrics).
    lines: [u64; 2],
}

impl ServiceLog {
    fn queued(&mut self, stream: Stream) -> &mut usize {
        let [out, err] = &mut self.queued;
        match stream {
            Stream::Stdout => out,
            Stream::Stderr => err,
        }
    }
}

/// The lines of one read, rendered for the console and the file.
struct Batch<'a> {
    service: ServiceId,
    /// A helper's label, shown instead of the service's name.
    label: Option<&'a str>,
    stream: Stream,
    now: SystemTime,
    stamp: &'a str,
    width: usize,
    /// Where followers' lines go, while someone follows.
    fresh: Option<&'a mut Vec<(ServiceId, Entry)>>,
    /// Rendered once: the console and the log file use the same format.
    console: Vec<u8>,
    lines: u64,
}

impl Batch<'_> {
    /// One line: rendered, remembered in the ring, offered to followers.
    fn take(&mut self, svc: &mut ServiceLog, text: &[u8], continued: bool) {
        let rec = Record {
            service: self.label.unwrap_or(&svc.name),
            stream: self.stream,
            time: (svc.timestamps || svc.format == Format::Json).then_some(self.stamp),
            text,
            continued,
        };
        render(&mut self.console, svc.format, self.width, &rec);
        self.lines += 1;
        if self.label.is_some() {
            // The service's own lines only: `svctl logs` shows what it
            // said, and an action's caller got the action's output.
            return;
        }
        if let Some(fresh) = &mut self.fresh
            && fresh.len() < FRESH_LIMIT
        {
            let entry = Entry {
                time: self.now,
                stream: self.stream,
                text: text.to_vec(),
                continued,
            };
            fresh.push((self.service, entry));
        }
        svc.ring.push_line(self.now, self.stream, text, continued);
    }
}

/// Every open service pipe, the sinks, and the per-service logs.
pub struct Output {
    width: usize,
    global: Global,
    relays: HashMap<u64, Relay>,
    services: HashMap<ServiceId, ServiceLog>,
    stdout: Option<Sink>,
    stderr: Option<Sink>,
    next_id: u64,
    /// Lines since the last `take_fresh`, while someone follows.
    fresh: Vec<(ServiceId, Entry)>,
    pub following: bool,
    /// What tapped relays read since the last `take_taps`.
    taps: Vec<Tapped>,
    /// Relays paused for a full queue (some may have resumed or gone
    /// since): what `flush_sinks` looks at, instead of every relay after
    /// every read.
    paused: Vec<u64>,
    /// The read buffer, kept: zeroing 64 KiB on the stack cost more than
    /// relaying the line that woke corral up. Made at the first read, so
    /// tini mode (no pipes) never has it resident.
    buf: Vec<u8>,
}

impl Output {
    pub fn new(global: Global) -> Output {
        Output {
            width: 0,
            global,
            relays: HashMap::new(),
            services: HashMap::new(),
            stdout: Sink::open(1, token(Kind::Sink, 1)).ok(),
            stderr: Sink::open(2, token(Kind::Sink, 2)).ok(),
            next_id: 0,
            fresh: Vec::new(),
            following: false,
            taps: Vec::new(),
            paused: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Takes in service `id`: its ring, log file and counters start empty.
    pub fn add(&mut self, id: ServiceId, s: &ServiceSpec) {
        let global = self.global;
        self.services.insert(
            id,
            ServiceLog {
                name: s.name.clone(),
                format: s.log.format.unwrap_or(global.format),
                timestamps: s.log.timestamps.unwrap_or(global.timestamps),
                on_full: s.log.on_full,
                ring: Ring::new(s.log.ring_lines, s.log.ring_bytes),
                file: s.log.file.clone().map(|f| LogFile::new(f, file_owner(s))),
                queued: [0, 0],
                dropped: 0,
                lines: [0; 2],
            },
        );
        self.width = self.width.max(s.name.len());
    }

    /// Service `id` has a new definition: its `[log]` settings apply from
    /// now on; its ring keeps what fits, its counters stay.
    pub fn reconfigure(&mut self, id: ServiceId, s: &ServiceSpec) {
        let global = self.global;
        let Some(log) = self.services.get_mut(&id) else {
            return self.add(id, s);
        };
        log.format = s.log.format.unwrap_or(global.format);
        log.timestamps = s.log.timestamps.unwrap_or(global.timestamps);
        log.on_full = s.log.on_full;
        let ring = std::mem::replace(&mut log.ring, Ring::new(0, 0));
        log.ring = ring.resized(s.log.ring_lines, s.log.ring_bytes);
        let same_file = log.file.as_ref().map(LogFile::spec) == s.log.file.as_ref();
        if !same_file {
            log.file = s.log.file.clone().map(|f| LogFile::new(f, file_owner(s)));
        }
    }

    /// Forgets service `id` (removed, and its process gone): its ring, file
    /// and any pipe still open for it.
    pub fn remove(&mut self, id: ServiceId, epoll: &Epoll) {
        self.services.remove(&id);
        self.relays.retain(|_, r| {
            let keep = r.service != id;
            if !keep {
                let _ = epoll.delete(&r.fd);
            }
            keep
        });
        self.width = self
            .services
            .values()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
    }

    /// Whether `service` writes straight to corral's stdout and stderr.
    pub fn inherits(&self, service: ServiceId) -> bool {
        self.services
            .get(&service)
            .is_some_and(|s| s.format == Format::Inherit)
    }

    /// Opens a pipe for `service`'s `stream` and watches its read end.
    /// Returns the relay id and the write end for the child.
    pub fn open(
        &mut self,
        service: ServiceId,
        stream: Stream,
        epoll: &Epoll,
    ) -> io::Result<(u64, OwnedFd)> {
        self.open_labelled(service, stream, None, None, epoll)
    }

    /// `open` for a helper of `service`: its lines marked `label`, its
    /// bytes handed to `tap` as well.
    pub fn open_labelled(
        &mut self,
        service: ServiceId,
        stream: Stream,
        label: Option<String>,
        tap: Option<u64>,
        epoll: &Epoll,
    ) -> io::Result<(u64, OwnedFd)> {
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC)?;
        let rd = super::spawn::park(rd);
        fcntl(&rd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let id = self.next_id;
        self.next_id += 1;
        epoll.add(
            &rd,
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Pipe, id)),
        )?;
        self.relays.insert(
            id,
            Relay {
                service,
                stream,
                fd: rd,
                splitter: Splitter::default(),
                paused: false,
                label,
                tap,
                held: false,
            },
        );
        Ok((id, wr))
    }

    /// What tapped relays read since the last call.
    pub fn take_taps(&mut self) -> Vec<Tapped> {
        std::mem::take(&mut self.taps)
    }

    /// Reads what the relays of `tap` hold now (before its final answer:
    /// the output came before the exit).
    pub fn read_tap(&mut self, tap: u64, epoll: &Epoll) {
        let ids: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, r)| r.tap == Some(tap))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = self.relays.get_mut(&id) {
                r.held = false;
            }
            self.on_readable(id, epoll);
        }
    }

    /// Stops (`true`) or resumes reading the relays of `tap`: the reader
    /// of the tap is behind, so the helper waits on its writes, as a
    /// service does when the console is behind. Nothing is lost.
    pub fn hold(&mut self, tap: u64, hold: bool, epoll: &Epoll) {
        for (id, r) in self.relays.iter_mut() {
            if r.tap != Some(tap) || r.held == hold {
                continue;
            }
            r.held = hold;
            let flags = if hold || r.paused {
                EpollFlags::empty()
            } else {
                EpollFlags::EPOLLIN
            };
            let mut interest = EpollEvent::new(flags, token(Kind::Pipe, *id));
            let _ = epoll.modify(&r.fd, &mut interest);
        }
    }

    /// Forgets a relay without reading it (its spawn failed).
    pub fn discard(&mut self, id: u64, epoll: &Epoll) {
        if let Some(r) = self.relays.remove(&id) {
            let _ = epoll.delete(&r.fd);
        }
    }

    /// Every open relay.
    pub fn ids(&self) -> Vec<u64> {
        self.relays.keys().copied().collect()
    }

    /// Lines the console did not get so far (`on_full = "drop"`, or a
    /// broken stdout or stderr), and lines the log file did not get.
    pub fn dropped(&self, service: ServiceId) -> (u64, u64) {
        self.services.get(&service).map_or((0, 0), |s| {
            (s.dropped, s.file.as_ref().map_or(0, |f| f.lost))
        })
    }

    /// Lines relayed from the service's stdout and stderr.
    pub fn lines(&self, service: ServiceId) -> [u64; 2] {
        self.services.get(&service).map_or([0; 2], |s| s.lines)
    }

    /// Relays what `service`'s pipes hold now, as a readable event would.
    /// Called when one of its processes was reaped: its last lines reach
    /// the console before its exit is seen (in svctl status, say), though
    /// the pipe's readiness may come in a later turn of the loop than the
    /// SIGCHLD.
    pub fn read_now(&mut self, service: ServiceId, epoll: &Epoll) {
        let ids: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, r)| r.service == service && r.label.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.on_readable(id, epoll);
        }
    }

    /// The ring of `service`, with its name.
    pub fn ring(&self, service: ServiceId) -> Option<(&str, &Ring)> {
        self.services
            .get(&service)
            .map(|s| (s.name.as_str(), &s.ring))
    }

    /// The lines seen since the last call (only while `following`).
    pub fn take_fresh(&mut self) -> Vec<(ServiceId, Entry)> {
        std::mem::take(&mut self.fresh)
    }

    /// Queues corral's own messages for stderr.
    pub fn own_message(&mut self, bytes: Vec<u8>, epoll: &Epoll) {
        if let Some(sink) = &mut self.stderr {
            sink.push(None, bytes);
        }
        self.flush_sinks(epoll);
    }

    /// Reads what the pipe has and passes its lines on. A relay whose
    /// service has a full queue is paused (block) instead. Once the pipe is
    /// closed (every writer gone) its last unterminated line is flushed and
    /// the relay removed.
    pub fn on_readable(&mut self, id: u64, epoll: &Epoll) {
        let Some(relay) = self.relays.get_mut(&id) else {
            return;
        };
        if relay.held {
            return;
        }
        let Some(svc) = self.services.get_mut(&relay.service) else {
            // Its service is gone: a pipe nobody reads would stay readable.
            if let Some(r) = self.relays.remove(&id) {
                let _ = epoll.delete(&r.fd);
            }
            return;
        };
        let stream = relay.stream;
        if svc.on_full == OnFull::Block && *svc.queued(stream) >= QUEUE_LIMIT {
            // No EPOLLIN until the sink has written this service's share.
            let mut none = EpollEvent::new(EpollFlags::empty(), token(Kind::Pipe, id));
            let _ = epoll.modify(&relay.fd, &mut none);
            relay.paused = true;
            self.paused.push(id);
            return;
        }
        if self.buf.len() < READ_SIZE {
            self.buf.resize(READ_SIZE, 0);
        }
        let buf = &mut self.buf;
        let now = SystemTime::now();
        let stamp = rfc3339(now);
        let console = match stream {
            Stream::Stdout => self.stdout.as_mut(),
            Stream::Stderr => self.stderr.as_mut(),
        }
        .map(Sink::buffer)
        .unwrap_or_default();
        let mut batch = Batch {
            service: relay.service,
            label: relay.label.as_deref(),
            stream: relay.stream,
            now,
            stamp: &stamp,
            width: self.width,
            fresh: self.following.then_some(&mut self.fresh),
            console,
            lines: 0,
        };
        let mut open = true;
        // Read at most what the service's share of the queue allows.
        let queued = *svc.queued(stream);
        while batch.console.len() + queued < QUEUE_LIMIT.max(queued + 1) {
            match read(&relay.fd, buf) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    if let Some(tap) = relay.tap {
                        self.taps.push(Tapped {
                            tap,
                            stream,
                            bytes: bytes.to_vec(),
                        });
                    }
                    relay
                        .splitter
                        .push(bytes, |p| batch.take(svc, p.text, p.continued))
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        if !open {
            relay
                .splitter
                .finish(|p| batch.take(svc, p.text, p.continued));
        }
        let Batch { console, lines, .. } = batch;
        let [out, err] = &mut svc.lines;
        *match stream {
            Stream::Stdout => out,
            Stream::Stderr => err,
        } += lines;
        if let Some(f) = &mut svc.file
            && !console.is_empty()
        {
            f.write(&console);
        }
        let service = relay.service;
        if !console.is_empty() {
            let sink = match stream {
                Stream::Stdout => &mut self.stdout,
                Stream::Stderr => &mut self.stderr,
            };
            let len = console.len();
            if svc.on_full == OnFull::Drop && *svc.queued(stream) + len > QUEUE_LIMIT {
                svc.dropped += lines;
            } else if let Some(s) = sink {
                if s.push(Some((service, stream)), console) {
                    *svc.queued(stream) += len;
                } else {
                    // A broken sink takes nothing: count, never wait.
                    svc.dropped += lines;
                }
            }
            // No such descriptor: nothing to write or wait for.
        }
        if !open && let Some(relay) = self.relays.remove(&id) {
            let _ = epoll.delete(&relay.fd);
        }
        self.flush_sinks(epoll);
    }

    /// A sink became writable.
    pub fn on_writable(&mut self, epoll: &Epoll) {
        self.flush_sinks(epoll);
    }

    /// Writes what the sinks take, credits the services, and resumes paused
    /// relays of services whose queue has room again.
    fn flush_sinks(&mut self, epoll: &Epoll) {
        let services = &mut self.services;
        let mut credit = |owner: Option<(ServiceId, Stream)>, n: usize, lost: u64| {
            if let Some((s, stream)) = owner.and_then(|(o, st)| Some((services.get_mut(&o)?, st))) {
                let q = s.queued(stream);
                *q = q.saturating_sub(n);
                s.dropped += lost;
            }
        };
        for sink in [&mut self.stdout, &mut self.stderr].into_iter().flatten() {
            sink.flush(epoll, &mut credit);
        }
        let (relays, services) = (&mut self.relays, &mut self.services);
        self.paused.retain(|&id| {
            let Some(relay) = relays.get_mut(&id).filter(|r| r.paused) else {
                return false;
            };
            let room = services
                .get_mut(&relay.service)
                .is_some_and(|s| *s.queued(relay.stream) < QUEUE_LIMIT / 2);
            if relay.held || !room {
                return true;
            }
            let mut interest = EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Pipe, id));
            if epoll.modify(&relay.fd, &mut interest).is_ok() {
                relay.paused = false;
            }
            relay.paused
        });
    }

    /// At exit: relays what the pipes still hold, then writes the queues,
    /// waiting for a slow reader at most `timeout`.
    pub fn drain(&mut self, epoll: &Epoll, timeout: Duration) {
        for id in self.ids() {
            if let Some(r) = self.relays.get_mut(&id) {
                r.paused = false;
                r.held = false;
            }
            if let Some(s) = self
                .relays
                .get(&id)
                .and_then(|r| self.services.get_mut(&r.service))
            {
                // Reading is what matters now; the queue is drained below.
                s.queued = [0, 0];
            }
            self.on_readable(id, epoll);
        }
        for sink in [&mut self.stdout, &mut self.stderr].into_iter().flatten() {
            sink.drain(epoll, timeout);
        }
    }
}

/// Who a service's log file and its directories belong to.
fn file_owner(s: &ServiceSpec) -> Option<(u32, u32)> {
    s.credentials
        .as_ref()
        .and_then(|c| c.uid.map(|u| (u, c.gid)))
}
