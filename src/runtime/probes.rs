//! Ready and health checks that corral runs itself: a file that must
//! exist, a TCP connect, a command that must exit 0. File checks answer at
//! once; connects finish in the event loop (EPOLLOUT); commands finish when
//! the reaper collects them, their output read as it comes (a check that
//! prints more than a pipe holds must not stall on its writes), keeping the
//! last `TAIL` bytes for the reason. At most one check per service and
//! purpose is in flight; the supervisor owns every timing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, connect, getsockopt, socket,
    sockopt,
};
use nix::unistd::{Pid, pipe2, read};

use super::spawn::{Extras, Target, spawn_as};
use super::{Kind, token};
use crate::config::ServiceSpec;
use crate::config::probes::{Probe, ReadyMethod};
use crate::supervisor::{Event, ExitStatus, ProbeResult, Purpose, ServiceId};

/// Bytes of a check's output kept: enough for its last lines.
const TAIL: usize = 4096;

/// A check in flight.
enum InFlight {
    /// A command; `output` (the read end, non-blocking, watched) is read
    /// while it runs, into `tail`.
    Exec {
        pid: i32,
        output: Option<OwnedFd>,
        tail: Vec<u8>,
    },
    /// A non-blocking connect waiting for EPOLLOUT.
    Tcp { socket: OwnedFd },
}

struct Check {
    run: u64,
    what: InFlight,
}

/// All checks in flight.
#[derive(Default)]
pub struct Probes {
    checks: HashMap<(ServiceId, Purpose), Check>,
}

/// The token id of a check's descriptor: the service and purpose packed,
/// and whether it is a command's output (else a connect).
fn probe_token(id: ServiceId, purpose: Purpose, output: bool) -> u64 {
    token(
        Kind::Probe,
        id.bits() << 2 | (output as u64) << 1 | (purpose == Purpose::Health) as u64,
    )
}

/// The inverse of `probe_token`'s id part.
pub fn untoken(id: u64) -> (ServiceId, Purpose, bool) {
    let purpose = if id & 1 == 1 {
        Purpose::Health
    } else {
        Purpose::Ready
    };
    (ServiceId::from_bits(id >> 2), purpose, id & 2 == 2)
}

impl Probes {
    /// Starts the check of `spec` for `purpose`. Returns the result when it
    /// is known at once.
    pub fn start(
        &mut self,
        id: ServiceId,
        run: u64,
        purpose: Purpose,
        spec: &ServiceSpec,
        epoll: &Epoll,
    ) -> Option<Event> {
        self.cancel(id, purpose, epoll);
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
            Probe::Tcp(addr) => match start_connect(*addr) {
                Ok(Connect::Done) => done(true, format!("connected to {addr}")),
                Ok(Connect::Pending(socket)) => {
                    let interest =
                        EpollEvent::new(EpollFlags::EPOLLOUT, probe_token(id, purpose, false));
                    if let Err(e) = epoll.add(&socket, interest) {
                        return done(false, format!("cannot watch the connect: {e}"));
                    }
                    self.checks.insert(
                        (id, purpose),
                        Check {
                            run,
                            what: InFlight::Tcp { socket },
                        },
                    );
                    None
                }
                Err(e) => done(false, format!("connect {addr}: {e}")),
            },
            Probe::Exec(argv) => {
                // Only corral's end is non-blocking: the check writes as to
                // any pipe, and waits when it is full until corral reads.
                let (rd, wr) = match pipe2(OFlag::O_CLOEXEC) {
                    Ok(p) => p,
                    Err(e) => return done(false, format!("cannot create a pipe: {e}")),
                };
                let watched = fcntl(&rd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).and_then(|_| {
                    epoll.add(
                        &rd,
                        EpollEvent::new(EpollFlags::EPOLLIN, probe_token(id, purpose, true)),
                    )
                });
                if let Err(e) = watched {
                    return done(false, format!("cannot watch the check's output: {e}"));
                }
                let spawned = wr.try_clone().and_then(|wr2| {
                    spawn_as(
                        spec,
                        argv,
                        Target::Fd(wr),
                        Target::Fd(wr2),
                        Extras::default(),
                    )
                });
                match spawned {
                    Ok(pid) => {
                        self.checks.insert(
                            (id, purpose),
                            Check {
                                run,
                                what: InFlight::Exec {
                                    pid,
                                    output: Some(rd),
                                    tail: Vec::new(),
                                },
                            },
                        );
                        None
                    }
                    Err(e) => {
                        let _ = epoll.delete(&rd);
                        done(false, e.to_string())
                    }
                }
            }
        }
    }

    /// A check's descriptor is ready: a command printed (or closed its
    /// output), or a connect finished one way or the other.
    pub fn on_ready(&mut self, token_id: u64, epoll: &Epoll) -> Option<Event> {
        let (id, purpose, output) = untoken(token_id);
        if output {
            if let Some(Check {
                what: InFlight::Exec { output, tail, .. },
                ..
            }) = self.checks.get_mut(&(id, purpose))
            {
                drain(output, tail, epoll);
            }
            return None;
        }
        let check = self.checks.remove(&(id, purpose))?;
        let InFlight::Tcp { socket } = check.what else {
            return None;
        };
        let _ = epoll.delete(&socket);
        let (ok, output) = match getsockopt(&socket, sockopt::SocketError) {
            Ok(0) => (true, "connected".to_string()),
            Ok(err) => (false, Errno::from_raw(err).desc().to_string()),
            Err(e) => (false, e.to_string()),
        };
        Some(Event::ProbeDone(ProbeResult {
            id,
            run: check.run,
            purpose,
            ok,
            output,
        }))
    }

    /// The reaper collected `pid`: if it was a check command, its result.
    pub fn on_exit(&mut self, pid: i32, status: ExitStatus, epoll: &Epoll) -> Option<Event> {
        let key = *self
            .checks
            .iter()
            .find(|(_, c)| matches!(c.what, InFlight::Exec { pid: p, .. } if p == pid))?
            .0;
        let check = self.checks.remove(&key)?;
        let InFlight::Exec {
            mut output,
            mut tail,
            ..
        } = check.what
        else {
            return None;
        };
        // What it wrote just before exiting may not have been read yet.
        drain(&mut output, &mut tail, epoll);
        if let Some(fd) = &output {
            let _ = epoll.delete(fd);
        }
        let text = last_line(&tail);
        let output = match (status.success(), text) {
            (_, Some(line)) => line,
            (true, None) => "exit code 0".to_string(),
            (false, None) => status.to_string(),
        };
        Some(Event::ProbeDone(ProbeResult {
            id: key.0,
            run: check.run,
            purpose: key.1,
            ok: status.success(),
            output,
        }))
    }

    /// Abandons a check: kills a command (and its group), drops a connect.
    pub fn cancel(&mut self, id: ServiceId, purpose: Purpose, epoll: &Epoll) {
        match self.checks.remove(&(id, purpose)).map(|c| c.what) {
            Some(InFlight::Exec { pid, output, .. }) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                if let Some(fd) = &output {
                    let _ = epoll.delete(fd);
                }
            }
            Some(InFlight::Tcp { socket }) => {
                let _ = epoll.delete(&socket);
            }
            None => {}
        }
    }
}

enum Connect {
    Done,
    Pending(OwnedFd),
}

fn start_connect(addr: SocketAddr) -> io::Result<Connect> {
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
        Ok(()) => Ok(Connect::Done),
        Err(Errno::EINPROGRESS) => Ok(Connect::Pending(socket)),
        Err(e) => Err(e.into()),
    }
}

/// Reads what the check's output pipe holds into `tail`, keeping the last
/// `TAIL` bytes; at EOF (every writer gone) the pipe is closed.
fn drain(output: &mut Option<OwnedFd>, tail: &mut Vec<u8>, epoll: &Epoll) {
    let Some(fd) = output.as_ref() else {
        return;
    };
    let mut buf = [0u8; 4096];
    let open = loop {
        match read(fd, &mut buf) {
            Ok(0) => break false,
            Ok(n) => {
                tail.extend_from_slice(buf.get(..n).unwrap_or_default());
                if tail.len() > TAIL {
                    tail.drain(..tail.len() - TAIL);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => break true,
            Err(_) => break false,
        }
    };
    if !open && let Some(fd) = output.take() {
        let _ = epoll.delete(&fd);
    }
}

/// The last non-empty line of a check's output.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}
