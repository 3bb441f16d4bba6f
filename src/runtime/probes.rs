//! Ready and health checks that corral runs itself: a file that must
//! exist, a TCP connect, a command that must exit 0. File checks answer at
//! once; connects finish in the event loop (EPOLLOUT); commands finish when
//! the reaper collects them. At most one check per service and purpose is
//! in flight; the supervisor owns every timing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
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

/// A check in flight.
enum InFlight {
    /// A command; its output pipe is read when it exits.
    Exec { pid: i32, output: OwnedFd },
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

/// The token id of a connect: the service and purpose packed.
fn probe_token(id: ServiceId, purpose: Purpose) -> u64 {
    token(
        Kind::Probe,
        id.bits() << 1 | (purpose == Purpose::Health) as u64,
    )
}

/// The inverse of `probe_token`'s id part.
pub fn untoken(id: u64) -> (ServiceId, Purpose) {
    let purpose = if id & 1 == 1 {
        Purpose::Health
    } else {
        Purpose::Ready
    };
    (ServiceId::from_bits(id >> 1), purpose)
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
                    let interest = EpollEvent::new(EpollFlags::EPOLLOUT, probe_token(id, purpose));
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
                let (rd, wr) = match pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
                    Ok(p) => p,
                    Err(e) => return done(false, format!("cannot create a pipe: {e}")),
                };
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
                                what: InFlight::Exec { pid, output: rd },
                            },
                        );
                        None
                    }
                    Err(e) => done(false, e.to_string()),
                }
            }
        }
    }

    /// A connect became writable: it finished one way or the other.
    pub fn on_connect(&mut self, token_id: u64, epoll: &Epoll) -> Option<Event> {
        let (id, purpose) = untoken(token_id);
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
    pub fn on_exit(&mut self, pid: i32, status: ExitStatus) -> Option<Event> {
        let key = *self
            .checks
            .iter()
            .find(|(_, c)| matches!(c.what, InFlight::Exec { pid: p, .. } if p == pid))?
            .0;
        let check = self.checks.remove(&key)?;
        let InFlight::Exec { output, .. } = check.what else {
            return None;
        };
        let text = last_line(&output);
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
            Some(InFlight::Exec { pid, .. }) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
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

/// The last non-empty line a check printed (what is in the pipe now).
fn last_line(fd: &OwnedFd) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 || all.len() > 64 * 1024 {
            break;
        }
        all.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&all);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}
