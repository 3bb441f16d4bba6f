//! Services that say when they are ready: the s6 convention (a newline on
//! a descriptor) and the systemd notify protocol (datagrams on
//! NOTIFY_SOCKET, sd_notify(3)). Notify messages are believed only from a
//! process in the service's own session, as the kernel reports the sender
//! (SCM_CREDENTIALS): nothing else in the container can make a service
//! look ready.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, recvmsg,
    setsockopt, socket, sockopt,
};
use nix::unistd::{pipe2, read};
use tracing::{debug, warn};

use super::{Kind, token};
use crate::supervisor::{Notice, Pid, ServiceId};

/// The readiness pipe of one run.
struct ReadyPipe {
    fd: OwnedFd,
    run: u64,
}

/// Readiness fds and notify sockets of all services.
pub struct Notify {
    pipes: HashMap<ServiceId, ReadyPipe>,
    sockets: HashMap<ServiceId, (OwnedFd, String)>,
    /// Keeps abstract socket names of several corrals in one network
    /// namespace apart.
    nonce: u64,
}

impl Notify {
    pub fn new() -> Notify {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Notify {
            pipes: HashMap::new(),
            sockets: HashMap::new(),
            nonce,
        }
    }

    /// A pipe for run `run` of service `id`; returns the write end for the
    /// child. A pipe of an earlier run is dropped.
    pub fn ready_pipe(&mut self, id: ServiceId, run: u64, epoll: &Epoll) -> nix::Result<OwnedFd> {
        self.close_pipe(id, epoll);
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        epoll.add(
            &rd,
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::ReadyFd, id as u64)),
        )?;
        self.pipes.insert(id, ReadyPipe { fd: rd, run });
        Ok(wr)
    }

    /// The readiness pipe has data or was closed. A newline means ready;
    /// the pipe is done either way once that or EOF is seen.
    pub fn on_pipe(&mut self, id: ServiceId, epoll: &Epoll) -> Option<(u64, Notice)> {
        let pipe = self.pipes.get(&id)?;
        let run = pipe.run;
        let mut buf = [0u8; 512];
        let verdict = loop {
            match read(&pipe.fd, &mut buf) {
                Ok(0) => break Some(false),
                Ok(n) if buf.get(..n).is_some_and(|b| b.contains(&b'\n')) => break Some(true),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break None,
                Err(_) => break Some(false),
            }
        };
        match verdict {
            None => None,
            Some(ready) => {
                self.close_pipe(id, epoll);
                ready.then(|| {
                    (
                        run,
                        Notice {
                            ready: true,
                            ..Notice::default()
                        },
                    )
                })
            }
        }
    }

    fn close_pipe(&mut self, id: ServiceId, epoll: &Epoll) {
        if let Some(p) = self.pipes.remove(&id) {
            let _ = epoll.delete(&p.fd);
        }
    }

    /// The NOTIFY_SOCKET value for service `id`, creating its socket on
    /// first use: an abstract datagram socket (no file system needed, so a
    /// read-only root is fine) that receives the sender's credentials.
    pub fn socket_for(&mut self, id: ServiceId, name: &str, epoll: &Epoll) -> nix::Result<String> {
        if let Some((_, addr)) = self.sockets.get(&id) {
            return Ok(addr.clone());
        }
        let abstract_name = format!("corral-{:x}-{name}", self.nonce);
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        bind(
            fd.as_raw_fd(),
            &UnixAddr::new_abstract(abstract_name.as_bytes())?,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        epoll.add(
            &fd,
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Notify, id as u64)),
        )?;
        let value = format!("@{abstract_name}");
        self.sockets.insert(id, (fd, value.clone()));
        Ok(value)
    }

    /// Reads every pending datagram on service `id`'s socket. Only those
    /// whose sender is in the session led by `session` (the service's main
    /// pid) count; the rest are logged and dropped.
    pub fn on_socket(&mut self, id: ServiceId, name: &str, session: Option<Pid>) -> Vec<Notice> {
        let Some((fd, _)) = self.sockets.get(&id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (len, sender) = match recvmsg::<()>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => {
                    let sender = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                            _ => None,
                        })
                    });
                    (msg.bytes, sender)
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            let text = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned();
            match (sender, session) {
                (Some(pid), Some(sid)) if session_of(pid) == Some(sid) => out.push(parse(&text)),
                (sender, _) => {
                    warn!(
                        "{name}: ignoring a notify message from pid {sender:?}, which is not one of the service's processes"
                    );
                }
            }
        }
        out
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

/// The session id of `pid`, from /proc/PID/stat (field 6).
fn session_of(pid: i32) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // state ppid pgrp session
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// `KEY=VALUE` lines of one message.
fn parse(text: &str) -> Notice {
    let mut n = Notice::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("READY", "1")) => n.ready = true,
            Some(("STOPPING", "1")) => n.stopping = true,
            Some(("STATUS", v)) => n.status = Some(v.to_string()),
            Some(("MAINPID", v)) => n.main_pid = v.trim().parse().ok(),
            _ => debug!("notify: ignoring {line:?}"),
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse() {
        let n = parse("READY=1\nSTATUS=Accepting connections\nMAINPID=42\nWATCHDOG=1\n");
        assert!(n.ready && !n.stopping);
        assert_eq!(n.status.as_deref(), Some("Accepting connections"));
        assert_eq!(n.main_pid, Some(42));
        assert_eq!(
            parse("STOPPING=1"),
            Notice {
                stopping: true,
                ..Notice::default()
            }
        );
        assert_eq!(parse("READY=0"), Notice::default());
    }
}
