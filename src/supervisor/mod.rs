//! The supervisor: a pure state machine over all services, the main command
//! and the shutdown sequence.
//!
//! It takes an `Event` and the current time and returns `Action`s. It makes
//! no system calls (it only logs), so every transition is unit-tested
//! without processes; `crate::runtime` performs the actions and reports their
//! results back as events.
//!
//! This file holds the types, `handle` (the dispatch of every event) and
//! `reconcile` (wants against states after each event). The transitions
//! live by topic: `lifecycle` (spawn, exit, timers, stop), `readiness`
//! (probes, notify, pidfile adoption), `requests` (svctl, signals,
//! shutdown), `view` (status and progress, read-only); `policy` and
//! `health` are the arithmetic.

mod actions;
pub mod event;
mod finish;
pub mod health;
mod journal;
mod lifecycle;
pub mod policy;
mod prepare;
mod readiness;
pub mod reload;
mod requests;
pub mod roster;
pub mod schedule;
pub mod state;
mod view;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

use crate::config::probes::{Kind, OnUnhealthy, ReadyMethod};
use crate::config::{Config, ServiceSpec};
use crate::proto::ServiceStatus;
pub use actions::KILL_AFTER;
pub use event::{
    Action, ActionOutcome, ActionRequest, Ending, Event, ExitStatus, Notice, Pid, ProbeResult,
    Purpose, ServiceId,
};
use health::{HealthCheck, HealthStatus};
use policy::Verdict;
use roster::{Deps, Roster};
#[cfg(test)]
use schedule::Fire;
use schedule::{Clock, Schedule};
pub use state::{AfterStop, Readiness, State};

/// Settings that are not per service.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// From the shutdown request until corral exits, orphans included.
    pub shutdown_budget: Duration,
    /// Time left to orphans between SIGTERM and SIGKILL.
    pub orphan_grace: Duration,
    /// How long to wait for processes that ignore even SIGKILL (stuck in
    /// uninterruptible sleep) before exiting anyway.
    pub kill_wait: Duration,
    /// The main command starts at the latest this long after boot, ready
    /// services or not.
    pub start_timeout: Duration,
    /// When startup is not done by then, say what is pending.
    pub report_after: Duration,
    /// Seeds the jitter of scheduled jobs (the runtime draws it at
    /// random, so containers started together spread out).
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::with_budget(DEFAULT_SHUTDOWN_BUDGET)
    }
}

impl Settings {
    /// Splits a shutdown budget: the last part (at most 500 ms) is for
    /// orphans, the rest for services.
    pub fn with_budget(budget: Duration) -> Settings {
        Settings {
            shutdown_budget: budget,
            orphan_grace: (budget / 4).min(Duration::from_millis(500)),
            kill_wait: Duration::from_secs(1),
            start_timeout: DEFAULT_START_TIMEOUT,
            report_after: Duration::from_secs(10),
            seed: 0,
        }
    }
}

/// Default shutdown budget: Docker waits 10 s before its SIGKILL, so corral
/// finishes well before that.
pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(8);

/// Default bound on how long the main command waits for the services.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit code after a shutdown in which some service had to be SIGKILLed or
/// the budget ran out (no main command).
pub const EXIT_UNCLEAN: i32 = 1;

/// How long corral keeps reading a daemonizing service's pidfile after
/// its launcher exited, and how often.
pub const ADOPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a runit `finish` may run before it is killed (runsv waits
/// forever; s6 gives 5 s). Within the shutdown budget during shutdown.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
const ADOPT_RETRY: Duration = Duration::from_millis(100);

/// Exit code when a required oneshot failed at boot.
pub const EXIT_ONESHOT_FAILED: i32 = 3;

/// One supervised service: its definition and its run-time record.
#[derive(Debug)]
pub struct Service {
    /// Its identity, set by the roster.
    pub id: ServiceId,
    pub spec: Box<ServiceSpec>,
    pub state: State,
    /// Whether the service should be up; requests and shutdown flip it.
    pub want_up: bool,
    /// Restarts since boot, automatic and requested.
    pub restarts: u32,
    /// Quick failures in a row, for backoff and the crash-loop budget.
    pub failures: u32,
    /// Failures since boot, for metrics: starts that got no process,
    /// processes that ended on their own with a failure status, readiness
    /// (or a usable pidfile) not reached in time, turning unhealthy.
    pub failures_total: u64,
    /// When the current process started, by the wall clock (metrics).
    pub started_wall: Option<jiff::Timestamp>,
    /// Processes started since boot; lets `restart` wait for a new one,
    /// and tells probe results of an earlier run apart.
    pub starts: u64,
    pub last_exit: Option<ExitStatus>,
    /// When the state last changed.
    pub changed_at: Instant,
    /// The last STATUS= the service sent over the notify protocol.
    pub status_text: Option<String>,
    /// Stopped because a service it requires was stopped (`svctl stop`):
    /// starting that one starts this one again.
    pub taken_down_by: Option<ServiceId>,
    /// Why the last readiness check of the current process failed.
    pub last_check: Option<String>,
    /// A reload removed it: it leaves the roster once it has no process.
    pub removing: bool,
    /// A reload changed it: this definition applies once it has no
    /// process (it is stopped for that if it must restart).
    pub next_spec: Option<Box<ServiceSpec>>,
    /// A scheduled oneshot's record: next run, counters, last result.
    pub schedule: Option<Schedule>,
}

impl Service {
    /// A service as loaded: stopped, nothing counted yet.
    fn new(spec: ServiceSpec, now: Instant, seed: u64) -> Service {
        Service {
            schedule: spec
                .schedule
                .as_ref()
                .map(|_| Schedule::new(&spec.name, seed)),
            id: ServiceId::default(),
            want_up: false,
            state: State::Stopped,
            restarts: 0,
            failures: 0,
            failures_total: 0,
            started_wall: None,
            starts: 0,
            last_exit: None,
            changed_at: now,
            status_text: None,
            last_check: None,
            taken_down_by: None,
            removing: false,
            next_spec: None,
            spec: Box::new(spec),
        }
    }

    /// Ready (longrun) or done (oneshot): what dependents wait for.
    fn is_up(&self) -> bool {
        match (&self.state, self.spec.kind) {
            (State::Running { ready, .. }, Kind::Longrun) => {
                matches!(ready, Readiness::Ready { .. })
            }
            // An optional oneshot that failed does not hold anything up.
            (State::Failed { .. } | State::Exited, Kind::Oneshot { optional: true, .. }) => true,
            (State::Exited, Kind::Oneshot { .. }) => {
                self.last_exit.is_some_and(|st| st.succeeded(&self.spec))
            }
            (State::Running { .. }, Kind::Oneshot { .. })
            | (
                State::Failed { .. },
                Kind::Oneshot {
                    optional: false, ..
                },
            )
            | (State::Failed { .. } | State::Exited, Kind::Longrun)
            | (
                State::Stopped
                | State::Starting
                | State::Preparing { .. }
                | State::Spawning
                | State::Adopting { .. }
                | State::Stopping { .. }
                | State::Finishing { .. }
                | State::Backoff { .. },
                Kind::Longrun | Kind::Oneshot { .. },
            ) => false,
        }
    }

    fn health(&self) -> Option<&HealthCheck> {
        match &self.state {
            State::Running {
                ready: Readiness::Ready { health, .. },
                ..
            } => health.as_ref(),
            State::Running {
                ready: Readiness::Waiting { .. },
                ..
            }
            | State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited
            | State::Finishing { .. } => None,
        }
    }
}

/// The main command of `corral -- CMD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Main {
    /// No main command was given.
    Absent,
    /// Waits for the services to be ready, at most until `start_timeout`.
    Pending,
    Spawning,
    Running {
        pid: Pid,
    },
    /// Finished with this exit code (the shell convention).
    Done {
        code: i32,
    },
    /// Shutdown came before it started.
    Skipped,
}

/// Where corral is in its own life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Supervising.
    Up,
    /// Stopping services in reverse dependency order; everything is killed
    /// at `deadline`. `forced` after a second signal or the deadline.
    Stopping { deadline: Instant, forced: bool },
    /// Services are down; orphans got SIGTERM (or SIGKILL once `killed`).
    /// At `until`: SIGKILL, or exit if that was sent already.
    Orphans { until: Instant, killed: bool },
    /// `Action::Exit` was issued.
    Exiting,
}

/// Startup progress, for the one summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Startup {
    /// Booted at `since`; `nagged` once the pending report was logged.
    Pending {
        since: Instant,
        nagged: bool,
    },
    Done,
}

/// Who owns a pid corral spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Service(ServiceId),
    Main,
    /// The command of an action's run.
    Action(u64),
}

/// Progress of an svctl request towards its goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Reached,
    Pending,
    Failed(String),
}

/// What an svctl request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Ready (a oneshot: done), with a process started after
    /// `starts_before` processes.
    Up { starts_before: u64 },
    /// No process left.
    Down,
    /// Removed (by a reload) and gone from the roster.
    Gone,
}

/// One line of `svctl health`: what is wrong with a service, if anything.
pub type Complaint = (String, String);

/// All services and the shutdown sequence.
#[derive(Debug)]
pub struct Supervisor {
    services: Roster,
    graph: Deps,
    pids: HashMap<Pid, Owner>,
    main: Main,
    phase: Phase,
    settings: Settings,
    startup: Startup,
    /// Some service needed SIGKILL during shutdown, or the budget ran out.
    unclean: bool,
    /// A required oneshot failed at boot and took the container down.
    oneshot_failed: bool,
    /// Set when shutdown begins: corral exits by then, whatever is left
    /// (the budget README promises, SIGKILL and the final sweep included).
    exit_by: Option<Instant>,
    /// Both clocks as of the event being handled.
    clock: Clock,
    /// Boot was handled: schedules are armed from then on.
    booted: bool,
    /// Actions in progress.
    runs: actions::Runs,
    /// What `svctl events` listeners last saw.
    journal: journal::Journal,
    /// Processes reaped that were no service's, action's or main's: the
    /// orphans re-parented to corral (metrics).
    orphans_reaped: u64,
}

impl Supervisor {
    pub fn new(
        config: Config,
        has_main: bool,
        settings: Settings,
        now: Instant,
        wall: jiff::Timestamp,
    ) -> Supervisor {
        let mut services = Roster::default();
        let ids: Vec<ServiceId> = config
            .services
            .into_iter()
            .map(|spec| services.insert(Service::new(spec, now, settings.seed)))
            .collect();
        Supervisor {
            graph: Deps::new(&config.graph, &ids),
            services,
            pids: HashMap::new(),
            main: if has_main {
                Main::Pending
            } else {
                Main::Absent
            },
            phase: Phase::Up,
            settings,
            startup: Startup::Pending {
                since: now,
                nagged: false,
            },
            unclean: false,
            oneshot_failed: false,
            exit_by: None,
            clock: Clock { mono: now, wall },
            booted: false,
            runs: actions::Runs::default(),
            journal: journal::Journal::default(),
            orphans_reaped: 0,
        }
    }

    /// `t`, or the end of the shutdown budget if that comes first.
    fn capped(&self, t: Instant) -> Instant {
        self.exit_by.map_or(t, |e| t.min(e))
    }

    /// Applies one event at `now` (monotonic) and `wall` (the wall clock,
    /// for schedules); returns what the runtime must do, in order.
    pub fn handle(&mut self, event: Event, now: Instant, wall: jiff::Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Exiting {
            return out;
        }
        self.clock = Clock { mono: now, wall };
        self.resync_schedules();
        match event {
            Event::Boot => {
                self.startup = Startup::Pending {
                    since: now,
                    nagged: false,
                };
                self.booted = true;
                // Only what has never started: a second Boot changes
                // nothing that runs. A scheduled job waits for its time.
                for s in self.services.iter_mut() {
                    let at_boot = s.spec.schedule.as_ref().is_none_or(|sc| sc.at_start);
                    if s.spec.enabled && at_boot && s.state == State::Stopped && s.starts == 0 {
                        s.want_up = true;
                        set_state(s, State::Starting, now);
                    }
                }
            }
            Event::Spawned { id, pid } => self.on_spawned(id, pid, now, &mut out),
            Event::SpawnFailed { id, error } => self.on_spawn_failed(id, &error, now, &mut out),
            Event::MainSpawned { pid } => {
                self.pids.insert(pid, Owner::Main);
                self.main = Main::Running { pid };
            }
            Event::MainSpawnFailed { code } => {
                self.main = Main::Done { code };
                self.begin_shutdown(now, &mut out);
            }
            Event::Reaped { pid, status } => self.on_reaped(pid, status, now, &mut out),
            Event::NoChildren => {
                if let Phase::Orphans { .. } = self.phase {
                    self.exit(&mut out);
                }
            }
            Event::Tick => self.on_tick(now, &mut out),
            Event::SignalReceived(signal) => self.on_signal(signal, now, &mut out),
            Event::StartRequested(ids) => {
                for id in ids {
                    self.request_start(id, now);
                }
            }
            Event::StopRequested(ids) => {
                for id in ids {
                    for d in self.graph.dependents_closure(id) {
                        // Remembered, so that starting `id` again brings
                        // back what its stop took down.
                        let cascaded = d != id;
                        if let Some(s) = self.services.get_mut(d) {
                            s.taken_down_by = (cascaded && s.want_up).then_some(id);
                        }
                        self.request_stop(d);
                    }
                }
            }
            Event::RestartRequested(ids) => {
                for id in ids {
                    self.request_restart(id, now, &mut out);
                }
            }
            Event::SignalRequested { ids, signal } => {
                for id in ids {
                    if let Some(pid) = self.services.get(id).and_then(|s| s.state.pid()) {
                        out.push(Action::Signal { pid, signal });
                    }
                }
            }
            Event::ShutdownRequested => self.request_shutdown(now, &mut out),
            Event::ProbeDone(result) => self.on_probe_done(result, now, &mut out),
            Event::Adopted { id, run, pid } => self.on_adopted(id, run, pid, now, &mut out),
            Event::AdoptFailed { id, run, reason } => self.on_adopt_failed(id, run, &reason, now),
            Event::Notified { id, run, message } => self.on_notified(id, run, message, now),
            Event::RunRequested(ids) => {
                for id in ids {
                    self.request_run(id, now, &mut out);
                }
            }
            Event::PrepareSpawned { id, pid } => self.on_prepare_spawned(id, pid, &mut out),
            Event::PrepareSpawnFailed { id, error } => self.on_prepare_failed(
                id,
                None,
                &format!("cannot run the prepare steps: {error}"),
                now,
                &mut out,
            ),
            Event::PrepareDone {
                id,
                pid,
                ok,
                reason,
            } => self.on_prepare_done(id, pid, ok, &reason, now, &mut out),
            Event::ActionRequested(req) => self.on_action_requested(req, now, &mut out),
            Event::ActionSpawned { run, pid } => self.on_action_spawned(run, pid, now, &mut out),
            Event::ActionSpawnFailed { run, error } => {
                self.on_action_spawn_failed(run, error, &mut out)
            }
            Event::FinishSpawned { id, pid } => self.on_finish_spawned(id, pid, &mut out),
            Event::FinishSpawnFailed { id, error } => {
                self.on_finish_ended(id, None, Some(&error), now, &mut out)
            }
            Event::FinishDone { id, pid } => {
                self.on_finish_ended(id, Some(pid), None, now, &mut out)
            }
        }
        self.settle_schedules(now, &mut out);
        self.reconcile(now, &mut out);
        if self.journal.listening() {
            let time = crate::logs::time::rfc3339(std::time::SystemTime::from(wall));
            out.extend(
                self.journal_lines(&time)
                    .into_iter()
                    .map(|l| Action::Publish(Box::new(l))),
            );
        }
        out
    }

    /// The earliest time at which `Event::Tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let services = self.services.iter().filter_map(|s| s.state.deadline());
        let phase = match self.phase {
            Phase::Stopping { deadline, .. } => Some(deadline),
            Phase::Orphans { until, .. } => Some(until),
            Phase::Up | Phase::Exiting => None,
        };
        let startup = match self.startup {
            Startup::Pending { since, nagged } => {
                let nag = (!nagged).then(|| since + self.settings.report_after);
                let main =
                    (self.main == Main::Pending).then(|| since + self.settings.start_timeout);
                nag.into_iter().chain(main).min()
            }
            Startup::Done => None,
        };
        // No run starts once shutdown began.
        let schedules = self
            .services
            .iter()
            .filter(|_| self.phase == Phase::Up)
            .filter_map(|s| s.schedule.as_ref().and_then(Schedule::deadline));
        services
            .chain(phase)
            .chain(startup)
            .chain(schedules)
            .chain(self.runs.deadline())
            .min()
    }

    /// The earliest wall-clock time a cron job is due, for a timer that
    /// follows clock steps (the monotonic deadline cannot).
    pub fn next_wall_deadline(&self) -> Option<jiff::Timestamp> {
        if self.phase != Phase::Up {
            return None;
        }
        self.services
            .iter()
            .filter_map(|s| {
                s.schedule
                    .as_ref()?
                    .wall_deadline(s.spec.schedule.as_ref()?)
            })
            .min()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Up
    }

    pub fn lookup(&self, name: &str) -> Option<ServiceId> {
        self.services.lookup(name)
    }

    pub fn services(&self) -> &Roster {
        &self.services
    }

    /// The service whose process `pid` is (its command, or the daemon
    /// adopted from its pidfile), if any.
    pub fn service_of(&self, pid: Pid) -> Option<ServiceId> {
        match self.pids.get(&pid) {
            Some(Owner::Service(id)) => Some(*id),
            _ => None,
        }
    }

    /// The exit code corral ends with: the main command's; else
    /// `EXIT_ONESHOT_FAILED` when a required oneshot failed at boot;
    /// else 0 for a clean shutdown and `EXIT_UNCLEAN` otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.main {
            Main::Done { code } => code,
            _ if self.oneshot_failed => EXIT_ONESHOT_FAILED,
            _ if self.unclean => EXIT_UNCLEAN,
            _ => 0,
        }
    }

    /// Ready or done (an unknown id is not).
    fn up(&self, id: ServiceId) -> bool {
        self.services.get(id).is_some_and(Service::is_up)
    }

    /// Has a process, or is getting one.
    fn active(&self, id: ServiceId) -> bool {
        self.services.get(id).is_some_and(|s| s.state.is_active())
    }

    fn requirements(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph.requires(id)
    }

    fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph.dependents(id)
    }

    /// Brings states in line with wants after every event: stops unwanted
    /// services once their dependents are down, starts wanted ones once
    /// their requirements are up, starts the main command once the services
    /// are ready, and moves the shutdown along.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.phase == Phase::Exiting {
            return;
        }
        self.settle_reload(now, out);
        let main_active = matches!(self.main, Main::Running { .. } | Main::Spawning);
        let shutting_down = self.phase != Phase::Up;
        // This runs after every event, so each pass looks at every service
        // once, cheaply, and does the work (edges, allocation) only for
        // the few that have something to do: at boot, N events times N
        // services made this more than half of corral's instructions
        // (callgrind, 500 services).
        let unwanted: Vec<ServiceId> = self
            .services
            .iter()
            .filter(|s| !s.want_up)
            .map(|s| s.id)
            .collect();
        for id in unwanted {
            let Some(s) = self.services.get_mut(id) else {
                continue;
            };
            match s.state {
                State::Starting | State::Backoff { .. } => set_state(s, State::Stopped, now),
                // The steps are not the service: killed at once. Once the
                // helper runs, that is (a pending one is killed when it
                // reports its pid).
                State::Preparing {
                    pid: Some(pid),
                    killed: false,
                } => {
                    out.push(Action::SignalGroup {
                        pgid: pid,
                        signal: Signal::SIGKILL,
                    });
                    s.state = State::Preparing {
                        pid: Some(pid),
                        killed: true,
                    };
                }
                State::Preparing { .. } => {}
                State::Running { .. } => {
                    // Dependents stop first; during shutdown the main
                    // command goes before every service.
                    let blocked = (shutting_down && main_active)
                        || self.dependents(id).any(|d| self.active(d));
                    if !blocked {
                        self.begin_stop(id, AfterStop::Down, now, out);
                    }
                }
                // finish runs to its end (bounded); what follows it
                // sees that the service is not wanted.
                State::Stopped
                | State::Spawning
                | State::Adopting { .. }
                | State::Stopping { .. }
                | State::Failed { .. }
                | State::Exited
                | State::Finishing { .. } => {}
            }
        }
        if !shutting_down {
            // In dependency order. Starting one does not make it up, so
            // which can start is the same before and after each start.
            let services = &self.services;
            let waiting: Vec<ServiceId> = self
                .graph
                .order
                .iter()
                .copied()
                .filter(|&id| {
                    services
                        .get(id)
                        .is_some_and(|s| s.want_up && matches!(s.state, State::Starting))
                })
                .collect();
            for id in waiting {
                let can_start = self.requirements(id).all(|r| self.up(r));
                let Some(s) = self.services.get_mut(id) else {
                    continue;
                };
                if can_start {
                    if s.spec.prepare.is_empty() {
                        set_state(s, State::Spawning, now);
                        out.push(Action::Spawn(id));
                    } else {
                        set_state(
                            s,
                            State::Preparing {
                                pid: None,
                                killed: false,
                            },
                            now,
                        );
                        out.push(Action::Prepare(id));
                    }
                }
            }
            self.check_startup(now, out);
        }
        if let Phase::Stopping { forced, .. } = self.phase {
            let all_down = !main_active
                && self.services.iter().all(|s| !s.state.is_active())
                && self.runs.is_empty();
            if all_down {
                let (signal, until, killed) = if forced {
                    (Signal::SIGKILL, now + self.settings.kill_wait, true)
                } else {
                    (Signal::SIGTERM, now + self.settings.orphan_grace, false)
                };
                let until = self.capped(until);
                debug!(
                    "services are down; sending {} to what is left",
                    signal.as_str()
                );
                out.push(Action::SignalOrphans(signal));
                self.phase = Phase::Orphans { until, killed };
            }
        }
    }

    fn exit(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Exiting;
        out.push(Action::Exit(self.exit_code()));
    }
}

fn set_state(s: &mut Service, next: State, now: Instant) {
    if s.state != next {
        debug!("{}: {} -> {}", s.spec.name, s.state.word(), next.word());
        s.state = next;
        s.changed_at = now;
    }
}

#[cfg(test)]
mod tests;
