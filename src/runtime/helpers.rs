//! Helper processes: short-lived children run on a service's behalf, its
//! exec ready and health checks and its actions. One way to run them all:
//! started the way the service runs (`spawn_as`: its environment, working
//! directory and privilege drop, in a session of its own), their output
//! read as it comes through epoll, their exit matched by pid when the
//! reaper collects them. Only corral's end of each pipe is non-blocking:
//! a helper that prints more than a pipe holds waits on its writes until
//! corral reads, as with any pipe, and never fails them.
//!
//! Where the output goes is the only difference between helpers. A check
//! keeps the last `TAIL` bytes of stdout and stderr together, for its
//! reason. An action's stdout and stderr are relayed apart as its
//! service's output, its lines marked `service/action`, and handed byte for
//! byte to the svctl that asked (`Output::open_labelled`). Every time
//! limit is the supervisor's; this module never waits.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, pipe2, read};

use super::output::Output;
use super::spawn::{Extras, Target, spawn_as};
use super::{Kind, token};
use crate::config::{Credentials, ServiceSpec};
use crate::logs::Stream;
use crate::supervisor::{Event, ExitStatus, ProbeResult, Purpose, ServiceId};

/// Bytes of a check's output kept: enough for its last lines.
const TAIL: usize = 4096;

/// corral's own binary, for the prepare helper: the running one, even if
/// the file was replaced since.
const SELF: &str = "/proc/self/exe";

/// Who a helper works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// A ready or health check of the service's start number `run`.
    Check {
        id: ServiceId,
        purpose: Purpose,
        run: u64,
    },
    /// An action's run (the supervisor knows it by pid).
    Action,
    /// The `[[prepare]]` steps of a service's next start.
    Prepare { id: ServiceId },
    /// A runit directory's `finish`, after an exit of its `run`.
    Finish { id: ServiceId },
}

/// A check's output: the read end (watched) and what it said last.
struct Tail {
    fd: Option<OwnedFd>,
    bytes: Vec<u8>,
}

struct Helper {
    job: Job,
    tail: Option<Tail>,
}

/// What an action's command needs beyond its service's definition.
pub struct ActionRun<'a> {
    pub run: u64,
    pub argv: &'a [String],
    /// Its own user or group, if it has one.
    pub credentials: Option<&'a Credentials>,
    pub env: Vec<(String, String)>,
    /// `service/action`, marking its lines in the container log.
    pub label: String,
}

/// Every helper process alive, by pid.
#[derive(Default)]
pub struct Helpers {
    running: HashMap<i32, Helper>,
    /// Token id of each check's output pipe, to its pid.
    tails: HashMap<u64, i32>,
    next_tail: u64,
}

impl Helpers {
    /// Starts the exec check `argv` of service `id` (start number `run`)
    /// for `purpose`; its result comes from `on_exit`.
    pub fn start_check(
        &mut self,
        (id, run, purpose): (ServiceId, u64, Purpose),
        spec: &ServiceSpec,
        argv: &[String],
        epoll: &Epoll,
    ) -> Result<(), String> {
        self.cancel_check(id, purpose);
        let (token_id, rd, wr) = self.tail_pipe(epoll)?;
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
                self.tails.insert(token_id, pid);
                self.running.insert(
                    pid,
                    Helper {
                        job: Job::Check { id, purpose, run },
                        tail: Some(Tail {
                            fd: Some(rd),
                            bytes: Vec::new(),
                        }),
                    },
                );
                Ok(())
            }
            Err(e) => {
                let _ = epoll.delete(&rd);
                Err(e.to_string())
            }
        }
    }

    /// Starts an action's command for service `id`; returns its pid.
    pub fn start_action(
        &mut self,
        id: ServiceId,
        spec: &ServiceSpec,
        action: ActionRun<'_>,
        output: &mut Output,
        epoll: &Epoll,
    ) -> Result<i32, String> {
        let mut relays = Vec::new();
        let mut pipe = |stream| {
            let (relay, wr) = output
                .open_labelled(
                    id,
                    stream,
                    Some(action.label.clone()),
                    Some(action.run),
                    epoll,
                )
                .map_err(|e| format!("cannot create output pipes: {e}"))?;
            relays.push(relay);
            Ok::<_, String>(wr)
        };
        let spawned = pipe(Stream::Stdout)
            .and_then(|out| Ok((out, pipe(Stream::Stderr)?)))
            .and_then(|(out, err)| {
                let extras = Extras {
                    env: action.env,
                    credentials: action.credentials.cloned(),
                    ..Extras::default()
                };
                spawn_as(spec, action.argv, Target::Fd(out), Target::Fd(err), extras)
                    .map_err(|e| e.to_string())
            });
        match spawned {
            Ok(pid) => {
                self.running.insert(
                    pid,
                    Helper {
                        job: Job::Action,
                        tail: None,
                    },
                );
                Ok(pid)
            }
            Err(e) => {
                for relay in relays {
                    output.discard(relay, epoll);
                }
                Err(e)
            }
        }
    }

    /// A pipe whose read end (non-blocking, watched under a fresh token)
    /// keeps a helper's last words; the write end, blocking, is the
    /// helper's.
    fn tail_pipe(&mut self, epoll: &Epoll) -> Result<(u64, OwnedFd, OwnedFd), String> {
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
        let rd = super::spawn::park(rd);
        let token_id = self.next_tail;
        self.next_tail = (self.next_tail + 1) & 0xffff_ffff_ffff;
        fcntl(&rd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .and_then(|_| {
                epoll.add(
                    &rd,
                    EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Helper, token_id)),
                )
            })
            .map_err(|e| format!("cannot watch the helper's output: {e}"))?;
        Ok((token_id, rd, wr))
    }

    /// A check's output pipe is readable (or closed).
    pub fn on_readable(&mut self, token_id: u64, epoll: &Epoll) {
        let Some(pid) = self.tails.get(&token_id) else {
            return;
        };
        if let Some(tail) = self.running.get_mut(pid).and_then(|h| h.tail.as_mut()) {
            tail.drain(epoll);
        }
    }

    /// The reaper collected `pid`: for a check, its result. `None` for
    /// anything else (an action's pid is the supervisor's to match).
    pub fn on_exit(&mut self, pid: i32, status: ExitStatus, epoll: &Epoll) -> Option<Event> {
        let helper = self.running.remove(&pid)?;
        self.tails.retain(|_, p| *p != pid);
        if let Job::Finish { id } = helper.job {
            return Some(Event::FinishDone { id, pid });
        }
        let mut tail = helper.tail?;
        // What it wrote just before exiting may not have been read yet.
        tail.drain(epoll);
        if let Some(fd) = &tail.fd {
            let _ = epoll.delete(fd);
        }
        let said = last_line(&tail.bytes);
        match helper.job {
            Job::Check { id, purpose, run } => Some(Event::ProbeDone(ProbeResult {
                id,
                run,
                purpose,
                ok: status.success(),
                output: match (status.success(), said) {
                    (_, Some(line)) => line,
                    (true, None) => "exit code 0".to_string(),
                    (false, None) => status.to_string(),
                },
            })),
            Job::Prepare { id } => Some(Event::PrepareDone {
                id,
                pid,
                ok: status.success(),
                reason: match said {
                    Some(line) if !status.success() => line,
                    _ => format!("the prepare helper ended: {status}"),
                },
            }),
            Job::Action | Job::Finish { .. } => None,
        }
    }

    /// Starts service `id`'s runit `finish` (`argv`: the file and runsv's
    /// two arguments), the way its `run` runs; its output goes to the log
    /// marked `service/finish`. `on_exit` reports its end.
    pub fn start_finish(
        &mut self,
        id: ServiceId,
        spec: &ServiceSpec,
        argv: &[String],
        output: &mut Output,
        epoll: &Epoll,
    ) -> Result<i32, String> {
        let label = || Some(format!("{}/finish", spec.name));
        let (out_relay, out) = output
            .open_labelled(id, Stream::Stdout, label(), None, epoll)
            .map_err(|e| format!("cannot create output pipes: {e}"))?;
        let (err_relay, err) = match output.open_labelled(id, Stream::Stderr, label(), None, epoll)
        {
            Ok(pair) => pair,
            Err(e) => {
                output.discard(out_relay, epoll);
                return Err(format!("cannot create output pipes: {e}"));
            }
        };
        match spawn_as(
            spec,
            argv,
            Target::Fd(out),
            Target::Fd(err),
            Extras::default(),
        ) {
            Ok(pid) => {
                self.running.insert(
                    pid,
                    Helper {
                        job: Job::Finish { id },
                        tail: None,
                    },
                );
                Ok(pid)
            }
            Err(e) => {
                output.discard(out_relay, epoll);
                output.discard(err_relay, epoll);
                Err(e.to_string())
            }
        }
    }

    /// Starts the `[[prepare]]` helper of service `id`: corral itself
    /// (`__prepare`), as corral, with the service's environment and the
    /// steps in `payload`. Its notes go to the log marked
    /// `service/prepare`; its last line on stderr is the reason of a
    /// failure. The result comes from `on_exit`.
    pub fn start_prepare(
        &mut self,
        id: ServiceId,
        spec: &ServiceSpec,
        payload: String,
        output: &mut Output,
        epoll: &Epoll,
    ) -> Result<i32, String> {
        let (token_id, rd, wr) = self.tail_pipe(epoll)?;
        let (relay, out) = output
            .open_labelled(
                id,
                Stream::Stdout,
                Some(format!("{}/prepare", spec.name)),
                None,
                epoll,
            )
            .map_err(|e| format!("cannot create output pipes: {e}"))?;
        let argv = [SELF.to_string(), "__prepare".to_string()];
        let extras = Extras {
            env: vec![(crate::prepare::PAYLOAD_VAR.to_string(), payload)],
            as_corral: true,
            ..Extras::default()
        };
        match spawn_as(spec, &argv, Target::Fd(out), Target::Fd(wr), extras) {
            Ok(pid) => {
                self.tails.insert(token_id, pid);
                self.running.insert(
                    pid,
                    Helper {
                        job: Job::Prepare { id },
                        tail: Some(Tail {
                            fd: Some(rd),
                            bytes: Vec::new(),
                        }),
                    },
                );
                Ok(pid)
            }
            Err(e) => {
                let _ = epoll.delete(&rd);
                output.discard(relay, epoll);
                Err(e.to_string())
            }
        }
    }

    /// Abandons the exec check of `id` for `purpose`, if one runs: SIGKILL
    /// to its process group; the reaper collects it as an orphan.
    pub fn cancel_check(&mut self, id: ServiceId, purpose: Purpose) {
        let found = self.running.iter().find_map(|(pid, h)| match h.job {
            Job::Check {
                id: i, purpose: p, ..
            } if i == id && p == purpose => Some(*pid),
            Job::Check { .. } | Job::Action | Job::Prepare { .. } | Job::Finish { .. } => None,
        });
        if let Some(pid) = found {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            // Dropping the read end closes it, which also leaves epoll.
            self.running.remove(&pid);
            self.tails.retain(|_, p| *p != pid);
        }
    }
}

impl Tail {
    /// Reads what the pipe holds, keeping the last `TAIL` bytes; at EOF
    /// (every writer gone) the pipe is closed.
    fn drain(&mut self, epoll: &Epoll) {
        let Some(fd) = self.fd.as_ref() else {
            return;
        };
        let mut buf = [0u8; 4096];
        let open = loop {
            match read(fd, &mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    self.bytes
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                    if self.bytes.len() > TAIL {
                        self.bytes.drain(..self.bytes.len() - TAIL);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break true,
                Err(_) => break false,
            }
        };
        if !open && let Some(fd) = self.fd.take() {
            let _ = epoll.delete(&fd);
        }
    }
}

/// The last non-empty line of a check's output.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| l.chars().take(400).collect())
}
