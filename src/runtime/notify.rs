//! Services that say when they are ready: the s6 convention (a newline on
//! a descriptor) and the systemd notify protocol (datagrams on
//! NOTIFY_SOCKET, sd_notify(3)).
//!
//! Who may notify: the kernel reports the sender's pid and uid with each
//! datagram (SCM_CREDENTIALS, checked by the kernel at send). A sender that
//! still exists must be in the service's own session. One that has exited
//! already (`systemd-notify --ready` exits right after sending, and its
//! shell reaps it before corral reads the datagram) counts when it ran as
//! the service's uid: another service can only fake that by running as
//! that uid, and a process of the same uid can ptrace or kill the service
//! anyway. Socket names are random, so nobody can bind one first.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, recvmsg,
    setsockopt, socket, sockopt,
};
use nix::unistd::{pipe2, read};
use tracing::debug;

use super::throttle::Throttle;
use super::{Kind, reaper, token};
use crate::supervisor::{Notice, Pid, ServiceId};

/// The readiness pipe of one run.
struct ReadyPipe {
    fd: OwnedFd,
    run: u64,
}

/// Descriptors one notify message may carry (FDSTORE=1); they are closed.
const MAX_PASSED_FDS: usize = 64;

/// One service's notify socket.
struct NotifySocket {
    fd: OwnedFd,
    /// The NOTIFY_SOCKET value: `@` and the abstract name.
    addr: String,
    /// Refusals are logged at most every `throttle::EVERY`.
    refusals: Throttle,
}

/// Readiness fds and notify sockets of all services.
pub struct Notify {
    pipes: HashMap<ServiceId, ReadyPipe>,
    sockets: HashMap<ServiceId, NotifySocket>,
}

/// Who a service's notify messages may come from.
#[derive(Debug, Clone, Copy)]
pub struct Senders {
    /// The service's session: its main pid.
    pub session: Option<Pid>,
    /// The uid it runs as.
    pub uid: u32,
}

impl Notify {
    pub fn new() -> Notify {
        Notify {
            pipes: HashMap::new(),
            sockets: HashMap::new(),
        }
    }

    /// A pipe for run `run` of service `id`; returns the write end for the
    /// child. A pipe of an earlier run is dropped.
    pub fn ready_pipe(&mut self, id: ServiceId, run: u64, epoll: &Epoll) -> nix::Result<OwnedFd> {
        self.close_pipe(id, epoll);
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let rd = super::spawn::park(rd);
        epoll.add(
            &rd,
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::ReadyFd, id.bits())),
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

    /// Drops everything of service `id` (a reload removed it).
    pub fn forget(&mut self, id: ServiceId, epoll: &Epoll) {
        self.close_pipe(id, epoll);
        if let Some(s) = self.sockets.remove(&id) {
            let _ = epoll.delete(&s.fd);
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
        if let Some(s) = self.sockets.get(&id) {
            return Ok(s.addr.clone());
        }
        // Abstract names are listed in /proc/net/unix for everyone: a
        // predictable one could be bound first by another service.
        let abstract_name = format!("corral-{}-{name}", random_hex()?);
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map(super::spawn::park)?;
        bind(
            fd.as_raw_fd(),
            &UnixAddr::new_abstract(abstract_name.as_bytes())?,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        epoll.add(
            &fd,
            EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Notify, id.bits())),
        )?;
        let value = format!("@{abstract_name}");
        self.sockets.insert(
            id,
            NotifySocket {
                fd,
                addr: value.clone(),
                refusals: Throttle::default(),
            },
        );
        Ok(value)
    }

    /// Reads every pending datagram on service `id`'s socket. Those from
    /// `senders` count (see the module doc); the rest are dropped, with a
    /// warning at most every `throttle::EVERY`. Passed descriptors are
    /// closed.
    pub fn on_socket(&mut self, id: ServiceId, name: &str, senders: Senders) -> Vec<Notice> {
        let Some(sock) = self.sockets.get_mut(&id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut cmsg =
                nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; MAX_PASSED_FDS]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (len, sender) = match recvmsg::<()>(
                sock.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut sender = None;
                    for m in msg.cmsgs().into_iter().flatten() {
                        match m {
                            ControlMessageOwned::ScmCredentials(cred) => {
                                sender = Some((cred.pid(), cred.uid()));
                            }
                            ControlMessageOwned::ScmRights(fds) => {
                                for fd in fds {
                                    // SAFETY: the kernel just gave us these
                                    // descriptors; nothing else owns them.
                                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                                }
                            }
                            _ => {}
                        }
                    }
                    (msg.bytes, sender)
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            let text = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned();
            match sender.map(|(pid, uid)| (pid, trusted(pid, uid, senders))) {
                Some((_, Ok(()))) => out.push(parse(&text)),
                refused => {
                    let why = match refused {
                        Some((_, Err(why))) => why,
                        _ => "no sender credentials".to_string(),
                    };
                    sock.refusals.warn(Instant::now(), || {
                        format!("{name}: ignoring a notify message: {why}")
                    });
                }
            }
        }
        out
    }
}

/// Whether a datagram from `pid` running as `uid` speaks for the service.
fn trusted(pid: i32, uid: u32, senders: Senders) -> Result<(), String> {
    if pid <= 0 {
        // The kernel reports 0 for a sender outside corral's PID namespace.
        return Err("the sender is outside corral's PID namespace".into());
    }
    match (reaper::proc_stat(pid), senders.session) {
        (Some(st), Some(sid)) if st.session == sid => Ok(()),
        (Some(_), _) => Err(format!(
            "pid {pid} is not one of the service's processes (not in its session)"
        )),
        // Gone before we read the datagram: the kernel's uid must be the
        // service's own.
        (None, _) if uid == senders.uid => Ok(()),
        (None, _) => Err(format!(
            "pid {pid} (gone) ran as uid {uid}, not as the service's uid {}",
            senders.uid
        )),
    }
}

/// 128 random bits in hex, from getrandom(2).
fn random_hex() -> nix::Result<String> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fills `bytes` from getrandom(2).
pub(super) fn fill_random(bytes: &mut [u8]) -> nix::Result<()> {
    // SAFETY: getrandom writes at most `bytes.len()` bytes into `bytes`.
    let n = unsafe { nix::libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(Errno::last());
    }
    Ok(())
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
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

/// Sends `message` to corral's own supervisor at `addr` (`@name` for an
/// abstract socket, else a path). A datagram that cannot be sent is
/// logged and forgotten: telling is a courtesy, not a condition to run.
pub fn announce(addr: &std::ffi::OsStr, message: &str) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = addr.as_bytes();
    let target = match bytes.strip_prefix(b"@") {
        Some(name) => UnixAddr::new_abstract(name),
        None => UnixAddr::new(bytes),
    };
    let sent = target.and_then(|to| {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        nix::sys::socket::sendto(
            fd.as_raw_fd(),
            message.as_bytes(),
            &to,
            MsgFlags::MSG_DONTWAIT,
        )
    });
    match sent {
        Ok(_) => debug!("told NOTIFY_SOCKET {}: {message:?}", addr.to_string_lossy()),
        Err(e) => tracing::warn!(
            "cannot notify corral's own supervisor at NOTIFY_SOCKET={}: {e}",
            addr.to_string_lossy()
        ),
    }
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
