//! Runs of actions (`svctl action SERVICE NAME`): whether one may start
//! (the service's state, one run of an action at a time, not during
//! shutdown), its process and deadline, and its end. A command action's
//! time limit is a deadline here like every other: SIGTERM to the action's
//! process group, SIGKILL `KILL_AFTER` later; shutdown does the same at
//! once. Every request ends in exactly one `Action::ActionDone` for the
//! client that asked. No system calls.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{info, warn};

use super::event::{ActionOutcome, ActionRequest, Ending};
use super::lifecycle::signal_service;
use super::{Action, ExitStatus, Owner, Phase, Pid, ServiceId, State, Supervisor};
use crate::config::actions::{Does, When};

/// Between the SIGTERM of a timed-out (or shut down) action and SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(5);

/// One run of a command action.
#[derive(Debug)]
pub struct Run {
    pub run: u64,
    /// The svctl connection that asked, for its answer.
    pub client: u64,
    pub id: ServiceId,
    pub name: String,
    /// `service/action`, for logs.
    pub label: String,
    pub asked: Instant,
    pub timeout: Duration,
    pub step: Step,
    /// Why corral is ending it, once it is.
    pub ending: Option<Ending>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `Action::StartAction` was issued; no pid yet.
    Spawning,
    /// Running; timed out at `until`.
    Running { pid: Pid, until: Instant },
    /// SIGTERM sent; SIGKILL at `kill_at`.
    Terminating { pid: Pid, kill_at: Instant },
    /// SIGKILL sent; waiting for the reaper.
    Killed { pid: Pid },
}

impl Step {
    pub fn pid(self) -> Option<Pid> {
        match self {
            Step::Spawning => None,
            Step::Running { pid, .. } | Step::Terminating { pid, .. } | Step::Killed { pid } => {
                Some(pid)
            }
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Step::Running { until, .. } => Some(until),
            Step::Terminating { kill_at, .. } => Some(kill_at),
            Step::Spawning | Step::Killed { .. } => None,
        }
    }
}

/// Every run in progress.
#[derive(Debug, Default)]
pub struct Runs {
    list: Vec<Run>,
    next: u64,
}

impl Runs {
    pub fn iter(&self) -> impl Iterator<Item = &Run> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether service `id` has a run in progress (its action `name`, or
    /// any when `None`).
    pub fn running(&self, id: ServiceId, name: Option<&str>) -> bool {
        self.list
            .iter()
            .any(|r| r.id == id && name.is_none_or(|n| r.name == n))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.list.iter().filter_map(|r| r.step.deadline()).min()
    }

    fn get_mut(&mut self, run: u64) -> Option<&mut Run> {
        self.list.iter_mut().find(|r| r.run == run)
    }

    fn take(&mut self, run: u64) -> Option<Run> {
        let at = self.list.iter().position(|r| r.run == run)?;
        Some(self.list.swap_remove(at))
    }
}

impl Supervisor {
    /// `svctl action`: refused, a signal sent, or a command started.
    pub(super) fn on_action_requested(
        &mut self,
        req: ActionRequest,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let refuse = |out: &mut Vec<Action>, message: String, bad_request: bool| {
            out.push(Action::ActionDone {
                client: req.client,
                outcome: ActionOutcome::Refused {
                    message,
                    bad_request,
                },
            });
        };
        let Some(s) = self.services.get(req.id) else {
            return refuse(out, "that service is gone (reloaded away)".into(), true);
        };
        let service = s.spec.name.clone();
        let label = format!("{service}/{}", req.name);
        let Some(spec) = s.spec.action(&req.name) else {
            return refuse(out, s.spec.no_such_action(&req.name), true);
        };
        if self.phase != Phase::Up {
            return refuse(out, "corral is shutting down".into(), false);
        }
        let running = match s.state {
            State::Running { pid, .. } => Some(pid),
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited
            | State::Finishing { .. } => None,
        };
        let state = s.state.word();
        match (&spec.does, running) {
            (Does::Signal { .. }, _) if !req.args.is_empty() => refuse(
                out,
                format!("{label} sends a signal and takes no arguments"),
                true,
            ),
            (Does::Signal { .. }, None) => refuse(
                out,
                format!(
                    "{service} is not running ({state}): {label} signals its process; start {service} first"
                ),
                false,
            ),
            (&Does::Signal { signal, group }, Some(pid)) => {
                if group {
                    signal_service(&s.spec, pid, signal, out);
                } else {
                    out.push(Action::Signal { pid, signal });
                }
                let whom = if group { "process group" } else { "pid" };
                info!("{label}: sent {} to {whom} {pid}", signal.as_str());
                out.push(Action::ActionDone {
                    client: req.client,
                    outcome: ActionOutcome::Signalled {
                        message: format!(
                            "{label}: sent {} to {service} ({whom} {pid})",
                            signal.as_str()
                        ),
                    },
                });
            }
            (Does::Command { .. }, None) if spec.when == When::Running => refuse(
                out,
                format!(
                    "{service} is not running ({state}): {label} runs only while it runs (when = \"running\"); start {service} first, or set when = \"any\""
                ),
                false,
            ),
            (Does::Command { .. }, _) => {
                if let Some(r) = self
                    .runs
                    .iter()
                    .find(|r| r.id == req.id && r.name == req.name)
                {
                    let pid = r.step.pid().map_or(String::new(), |p| format!("pid {p}, "));
                    let took = now.saturating_duration_since(r.asked).as_secs();
                    return refuse(
                        out,
                        format!(
                            "{label} is already running ({pid}for {took}s): one run at a time; wait for it to end"
                        ),
                        false,
                    );
                }
                let run = self.runs.next;
                self.runs.next += 1;
                self.runs.list.push(Run {
                    run,
                    client: req.client,
                    id: req.id,
                    name: req.name.clone(),
                    label,
                    asked: now,
                    timeout: spec.timeout,
                    step: Step::Spawning,
                    ending: None,
                });
                out.push(Action::StartAction {
                    run,
                    client: req.client,
                    id: req.id,
                    name: req.name,
                    args: req.args,
                });
            }
        }
    }

    pub(super) fn on_action_spawned(
        &mut self,
        run: u64,
        pid: Pid,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let shutting_down = self.phase != Phase::Up;
        let kill_at = self.capped(now + KILL_AFTER);
        let Some(r) = self.runs.get_mut(run) else {
            return;
        };
        if r.step != Step::Spawning {
            return;
        }
        self.pids.insert(pid, Owner::Action(run));
        info!("{}: started (pid {pid})", r.label);
        r.step = Step::Running {
            pid,
            until: now + r.timeout,
        };
        // Shutdown began between the request and the spawn.
        if shutting_down {
            terminate(r, Ending::Shutdown, kill_at, out);
        }
    }

    pub(super) fn on_action_spawn_failed(
        &mut self,
        run: u64,
        error: String,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.runs.take(run) else {
            return;
        };
        warn!("{}: cannot start: {error}", r.label);
        out.push(Action::ActionDone {
            client: r.client,
            outcome: ActionOutcome::NotStarted {
                message: format!("{}: cannot start: {error}", r.label),
            },
        });
    }

    /// The reaper collected the process of run `run`.
    pub(super) fn on_action_exit(
        &mut self,
        run: u64,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.runs.take(run) else {
            return;
        };
        let took = now.saturating_duration_since(r.asked);
        match (r.ending, status.success()) {
            (None, true) => info!("{}: {status} after {} ms", r.label, took.as_millis()),
            (None, false) => warn!("{}: {status} after {} ms", r.label, took.as_millis()),
            (Some(Ending::TimedOut), _) => warn!(
                "{}: timed out after {} s, {status}",
                r.label,
                r.timeout.as_secs()
            ),
            (Some(Ending::Shutdown), _) => info!("{}: ended by shutdown, {status}", r.label),
        }
        out.push(Action::ActionDone {
            client: r.client,
            outcome: ActionOutcome::Exited {
                run,
                label: r.label,
                status,
                timeout: r.timeout,
                ending: r.ending,
            },
        });
    }

    /// Deadlines of runs that are due: SIGTERM at the time limit, SIGKILL
    /// `KILL_AFTER` later.
    pub(super) fn on_action_deadlines(&mut self, now: Instant, out: &mut Vec<Action>) {
        let kill_at = self.capped(now + KILL_AFTER);
        for r in &mut self.runs.list {
            match r.step {
                Step::Running { until, .. } if until <= now => {
                    warn!(
                        "{}: still running after its timeout of {} s; sending SIGTERM",
                        r.label,
                        r.timeout.as_secs()
                    );
                    terminate(r, Ending::TimedOut, kill_at, out);
                }
                Step::Terminating { pid, kill_at } if kill_at <= now => {
                    warn!("{}: still running; sending SIGKILL", r.label);
                    out.push(Action::SignalGroup {
                        pgid: pid,
                        signal: Signal::SIGKILL,
                    });
                    r.step = Step::Killed { pid };
                }
                Step::Spawning
                | Step::Running { .. }
                | Step::Terminating { .. }
                | Step::Killed { .. } => {}
            }
        }
    }

    /// Shutdown began: every run gets SIGTERM, and SIGKILL `KILL_AFTER`
    /// later or when the services' part of the budget ends.
    pub(super) fn end_actions(&mut self, until: Instant, out: &mut Vec<Action>) {
        for r in &mut self.runs.list {
            if let Step::Running { .. } = r.step {
                info!("{}: shutting down; sending SIGTERM", r.label);
                terminate(r, Ending::Shutdown, until, out);
            }
        }
    }

    /// The budget is spent: SIGKILL to every run now.
    pub(super) fn kill_actions(&mut self, out: &mut Vec<Action>) {
        for r in &mut self.runs.list {
            if let Some(pid) = r.step.pid() {
                out.push(Action::SignalGroup {
                    pgid: pid,
                    signal: Signal::SIGKILL,
                });
                r.step = Step::Killed { pid };
                r.ending.get_or_insert(Ending::Shutdown);
            }
        }
    }
}

/// SIGTERM (and SIGCONT, so a stopped one can act on it) to the run's
/// process group; SIGKILL follows at `kill_at`.
fn terminate(r: &mut Run, why: Ending, kill_at: Instant, out: &mut Vec<Action>) {
    let Step::Running { pid, .. } = r.step else {
        return;
    };
    for signal in [Signal::SIGTERM, Signal::SIGCONT] {
        out.push(Action::SignalGroup { pgid: pid, signal });
    }
    r.step = Step::Terminating { pid, kill_at };
    r.ending = Some(why);
}
