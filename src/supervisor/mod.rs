//! The supervisor: a pure state machine over all services, the main command
//! and the shutdown sequence.
//!
//! It takes an `Event` and the current time and returns `Action`s. It makes
//! no system calls (it only logs), so every transition is unit-tested
//! without processes; `crate::runtime` performs the actions and reports their
//! results back as events.

pub mod event;
pub mod policy;
pub mod state;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

use crate::config::{Config, ServiceSpec};
use crate::graph::Graph;
use crate::proto::ServiceStatus;
pub use event::{Action, Event, ExitStatus, Pid, ServiceId};
use policy::Verdict;
pub use state::State;

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
        }
    }
}

/// Default shutdown budget: Docker waits 10 s before its SIGKILL, so corral
/// finishes well before that.
pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(8);

/// Exit code after a shutdown in which some service had to be SIGKILLed or
/// the budget ran out (no main command).
pub const EXIT_UNCLEAN: i32 = 1;

/// One supervised service: its definition and its run-time record.
#[derive(Debug)]
pub struct Service {
    pub spec: ServiceSpec,
    pub state: State,
    /// Whether the service should be up; requests and shutdown flip it.
    pub want_up: bool,
    /// Restarts since boot, automatic and requested.
    pub restarts: u32,
    /// Quick failures in a row, for backoff and the crash-loop budget.
    pub failures: u32,
    /// Processes started since boot; lets `restart` wait for a new one.
    pub starts: u64,
    pub last_exit: Option<ExitStatus>,
    /// When the state last changed.
    pub changed_at: Instant,
}

/// The main command of `corral -- CMD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Main {
    /// No main command was given.
    Absent,
    /// Waits for the services to settle.
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

/// Who owns a pid corral spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Service(ServiceId),
    Main,
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
    /// Running with a process started after `starts_before` processes.
    Up { starts_before: u64 },
    /// No process left.
    Down,
}

/// All services and the shutdown sequence.
#[derive(Debug)]
pub struct Supervisor {
    services: Vec<Service>,
    graph: Graph,
    pids: HashMap<Pid, Owner>,
    main: Main,
    phase: Phase,
    settings: Settings,
    /// Some service needed SIGKILL during shutdown, or the budget ran out.
    unclean: bool,
}

impl Supervisor {
    pub fn new(config: Config, has_main: bool, settings: Settings, now: Instant) -> Supervisor {
        let services = config
            .services
            .into_iter()
            .map(|spec| Service {
                want_up: false,
                state: State::Stopped,
                restarts: 0,
                failures: 0,
                starts: 0,
                last_exit: None,
                changed_at: now,
                spec,
            })
            .collect();
        Supervisor {
            services,
            graph: config.graph,
            pids: HashMap::new(),
            main: if has_main {
                Main::Pending
            } else {
                Main::Absent
            },
            phase: Phase::Up,
            settings,
            unclean: false,
        }
    }

    /// Applies one event; returns what the runtime must do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Exiting {
            return out;
        }
        match event {
            Event::Boot => {
                for s in &mut self.services {
                    if s.spec.enabled {
                        s.want_up = true;
                        set_state(s, State::Starting, now);
                    }
                }
            }
            Event::Spawned { id, pid } => self.on_spawned(id, pid, now),
            Event::SpawnFailed { id, error } => self.on_spawn_failed(id, &error, now),
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
        }
        self.reconcile(now, &mut out);
        out
    }

    /// The earliest time at which `Event::Tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let services = self.services.iter().filter_map(|s| match &s.state {
            State::Backoff { until } => Some(*until),
            State::Stopping { kill_at, .. } => *kill_at,
            _ => None,
        });
        let phase = match self.phase {
            Phase::Stopping { deadline, .. } => Some(deadline),
            Phase::Orphans { until, .. } => Some(until),
            Phase::Up | Phase::Exiting => None,
        };
        services.chain(phase).min()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Up
    }

    pub fn lookup(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.spec.name == name)
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The exit code corral ends with: the main command's, else 0 for a
    /// clean shutdown and `EXIT_UNCLEAN` otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.main {
            Main::Done { code } => code,
            _ if self.unclean => EXIT_UNCLEAN,
            _ => 0,
        }
    }

    /// Where service `id` stands with respect to `goal`.
    pub fn progress(&self, id: ServiceId, goal: Goal) -> Progress {
        let Some(s) = self.services.get(id) else {
            return Progress::Failed("no such service".into());
        };
        match (goal, &s.state) {
            (Goal::Down, state)
                if !state.is_active()
                    && !matches!(state, State::Backoff { .. } | State::Starting) =>
            {
                Progress::Reached
            }
            (Goal::Down, _) => Progress::Pending,
            (Goal::Up { starts_before }, State::Running { .. }) if s.starts > starts_before => {
                Progress::Reached
            }
            (Goal::Up { .. }, State::Failed { reason }) => {
                Progress::Failed(format!("failed: {reason}"))
            }
            (Goal::Up { .. }, State::Exited) => Progress::Failed(match s.last_exit {
                Some(e) => format!("exited ({e}) and its restart policy keeps it down"),
                None => "exited".into(),
            }),
            (Goal::Up { .. }, State::Stopped) if !s.want_up => {
                Progress::Failed("was stopped".into())
            }
            (Goal::Up { .. }, _) => Progress::Pending,
        }
    }

    /// Status of the given services (all when `ids` is empty).
    pub fn status(&self, ids: &[ServiceId], now: Instant) -> Vec<ServiceStatus> {
        let all: Vec<ServiceId>;
        let ids = if ids.is_empty() {
            all = (0..self.services.len()).collect();
            &all
        } else {
            ids
        };
        ids.iter()
            .filter_map(|&id| {
                let s = self.services.get(id)?;
                let since = match &s.state {
                    State::Running { started, .. } => *started,
                    _ => s.changed_at,
                };
                Some(ServiceStatus {
                    name: s.spec.name.clone(),
                    state: s.state.word().to_string(),
                    pid: s.state.pid(),
                    uptime_ms: Some(now.saturating_duration_since(since).as_millis() as u64),
                    restarts: s.restarts,
                    last_exit: s.last_exit.map(ExitStatus::to_proto),
                    enabled: s.spec.enabled,
                    user: s.spec.credentials.as_ref().map(|c| c.display.clone()),
                    note: self.note(id, now),
                })
            })
            .collect()
    }

    /// Why a service is where it is, for status.
    fn note(&self, id: ServiceId, now: Instant) -> Option<String> {
        let s = self.services.get(id)?;
        match &s.state {
            State::Starting => {
                let waiting: Vec<&str> = self
                    .requirements(id)
                    .filter(|&r| !matches!(self.services[r].state, State::Running { .. }))
                    .map(|r| self.services[r].spec.name.as_str())
                    .collect();
                (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))
            }
            State::Backoff { until } => Some(format!(
                "restart in {} ms",
                until.saturating_duration_since(now).as_millis()
            )),
            State::Failed { reason } => Some(reason.clone()),
            State::Stopping {
                then_start: true, ..
            } => Some("restarting".into()),
            _ => None,
        }
    }

    fn requirements(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph.requires.get(id).into_iter().flatten().copied()
    }

    fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph.dependents.get(id).into_iter().flatten().copied()
    }

    fn on_spawned(&mut self, id: ServiceId, pid: Pid, now: Instant) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        self.pids.insert(pid, Owner::Service(id));
        s.starts += 1;
        info!("{}: started, pid {pid}", s.spec.name);
        // Spawned only answers Spawning; a stop requested meanwhile is
        // carried out by reconcile, which sees the process running.
        set_state(s, State::Running { pid, started: now }, now);
    }

    fn on_spawn_failed(&mut self, id: ServiceId, error: &str, now: Instant) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        warn!("{}: cannot start: {error}", s.spec.name);
        let (verdict, failures) = policy::after_exit(
            s.spec.restart,
            &s.spec.backoff,
            None,
            Duration::ZERO,
            s.failures,
        );
        s.failures = failures;
        let next = match verdict {
            Verdict::Restart(delay) if s.want_up && self.phase == Phase::Up => {
                State::Backoff { until: now + delay }
            }
            Verdict::Restart(_) => State::Stopped,
            Verdict::Stay | Verdict::GiveUp => State::Failed {
                reason: format!("cannot start: {error}"),
            },
        };
        set_state(s, next, now);
    }

    fn on_reaped(&mut self, pid: Pid, status: ExitStatus, now: Instant, out: &mut Vec<Action>) {
        match self.pids.remove(&pid) {
            None => debug!("reaped orphan {pid} ({status})"),
            Some(Owner::Main) => {
                info!("main command exited: {status}");
                self.main = Main::Done {
                    code: status.as_exit_code(),
                };
                if self.phase == Phase::Up {
                    self.begin_shutdown(now, out);
                }
            }
            Some(Owner::Service(id)) => self.on_service_exit(id, pid, status, now, out),
        }
    }

    fn on_service_exit(
        &mut self,
        id: ServiceId,
        pid: Pid,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let up = self.phase == Phase::Up;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        s.last_exit = Some(status);
        // The main process is gone; whatever it left in its process group
        // would hold ports and files against the next start.
        out.push(Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL,
        });
        let next = match s.state {
            State::Running { started, .. } => {
                let ran_for = now.saturating_duration_since(started);
                let (verdict, failures) = policy::after_exit(
                    s.spec.restart,
                    &s.spec.backoff,
                    Some(status),
                    ran_for,
                    s.failures,
                );
                s.failures = failures;
                match verdict {
                    _ if !s.want_up || !up => State::Stopped,
                    Verdict::Restart(delay) => {
                        warn!(
                            "{}: {status}; restarting in {} ms",
                            s.spec.name,
                            delay.as_millis()
                        );
                        State::Backoff { until: now + delay }
                    }
                    Verdict::Stay => {
                        info!(
                            "{}: {status}; not restarted (restart = {:?})",
                            s.spec.name, s.spec.restart
                        );
                        State::Exited
                    }
                    Verdict::GiveUp => {
                        let reason = format!(
                            "{failures} quick exits in a row, last: {status}; svctl start resets"
                        );
                        warn!("{}: failed: {reason}", s.spec.name);
                        State::Failed { reason }
                    }
                }
            }
            State::Stopping { then_start, .. } => {
                info!("{}: stopped ({status})", s.spec.name);
                if then_start && s.want_up && up {
                    s.restarts += 1;
                    s.failures = 0;
                    State::Starting
                } else {
                    State::Stopped
                }
            }
            // The pid table only holds running processes.
            State::Stopped
            | State::Starting
            | State::Spawning
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited => return,
        };
        set_state(s, next, now);
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let up = self.phase == Phase::Up;
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        for s in &mut self.services {
            match s.state {
                State::Backoff { until } if until <= now => {
                    if s.want_up && up {
                        s.restarts += 1;
                        set_state(s, State::Starting, now);
                    } else {
                        set_state(s, State::Stopped, now);
                    }
                }
                State::Stopping {
                    pid,
                    kill_at: Some(at),
                    then_start,
                } if at <= now => {
                    warn!(
                        "{}: did not stop within {:?}; sending SIGKILL",
                        s.spec.name, s.spec.stop_timeout
                    );
                    out.push(Action::SignalGroup {
                        pgid: pid,
                        signal: Signal::SIGKILL,
                    });
                    s.state = State::Stopping {
                        pid,
                        kill_at: None,
                        then_start,
                    };
                    if stopping {
                        self.unclean = true;
                    }
                }
                _ => {}
            }
        }
        match self.phase {
            Phase::Stopping {
                deadline,
                forced: false,
            } if deadline <= now => {
                warn!(
                    "shutdown budget of {:?} ran out; killing what is left",
                    self.settings.shutdown_budget
                );
                self.force(now, out);
            }
            Phase::Orphans {
                until,
                killed: false,
            } if until <= now => {
                out.push(Action::SignalOrphans(Signal::SIGKILL));
                self.phase = Phase::Orphans {
                    until: now + self.settings.kill_wait,
                    killed: true,
                };
            }
            Phase::Orphans {
                until,
                killed: true,
            } if until <= now => {
                warn!("processes survived SIGKILL (uninterruptible sleep?); exiting anyway");
                self.exit(out);
            }
            _ => {}
        }
    }

    fn on_signal(&mut self, signal: Signal, now: Instant, out: &mut Vec<Action>) {
        match (self.main, self.phase) {
            // tini semantics: the main command gets every signal; corral
            // shuts down when it exits.
            (Main::Running { pid }, Phase::Up) => out.push(Action::Signal { pid, signal }),
            (_, _) if matches!(signal, Signal::SIGTERM | Signal::SIGINT) => {
                info!("received {}", signal.as_str());
                self.request_shutdown(now, out);
            }
            (_, _) => debug!("ignoring {}", signal.as_str()),
        }
    }

    fn request_start(&mut self, id: ServiceId, now: Instant) {
        for r in self.graph.requirements_closure(id) {
            let Some(s) = self.services.get_mut(r) else {
                continue;
            };
            s.want_up = true;
            match &mut s.state {
                State::Failed { .. } => {
                    s.failures = 0;
                    set_state(s, State::Starting, now);
                }
                State::Stopped | State::Exited => set_state(s, State::Starting, now),
                State::Backoff { .. } => {
                    s.restarts += 1;
                    set_state(s, State::Starting, now);
                }
                State::Stopping { then_start, .. } => *then_start = true,
                State::Starting | State::Spawning | State::Running { .. } => {}
            }
        }
    }

    fn request_stop(&mut self, id: ServiceId) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        s.want_up = false;
        if let State::Stopping { then_start, .. } = &mut s.state {
            *then_start = false;
        }
    }

    fn request_restart(&mut self, id: ServiceId, now: Instant, out: &mut Vec<Action>) {
        self.request_start(id, now);
        if let Some(State::Running { .. }) = self.services.get(id).map(|s| &s.state) {
            self.begin_stop(id, true, now, out);
        }
    }

    fn request_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Up => self.begin_shutdown(now, out),
            Phase::Stopping { forced: false, .. } => {
                warn!("second stop request: killing everything now");
                self.force(now, out);
            }
            Phase::Orphans { killed: false, .. } => {
                out.push(Action::SignalOrphans(Signal::SIGKILL));
                self.phase = Phase::Orphans {
                    until: now + self.settings.kill_wait,
                    killed: true,
                };
            }
            Phase::Stopping { forced: true, .. }
            | Phase::Orphans { killed: true, .. }
            | Phase::Exiting => {}
        }
    }

    fn begin_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        info!("shutting down");
        let services_budget = self
            .settings
            .shutdown_budget
            .saturating_sub(self.settings.orphan_grace);
        self.phase = Phase::Stopping {
            deadline: now + services_budget,
            forced: false,
        };
        for s in &mut self.services {
            s.want_up = false;
        }
        match self.main {
            Main::Running { pid } => out.push(Action::Signal {
                pid,
                signal: Signal::SIGTERM,
            }),
            Main::Pending | Main::Spawning => self.main = Main::Skipped,
            Main::Absent | Main::Done { .. } | Main::Skipped => {}
        }
    }

    /// Kills everything still running at once, ignoring order.
    fn force(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.unclean = true;
        self.phase = Phase::Stopping {
            deadline: now,
            forced: true,
        };
        if let Main::Running { pid } = self.main {
            out.push(Action::Signal {
                pid,
                signal: Signal::SIGKILL,
            });
        }
        for s in &mut self.services {
            s.want_up = false;
            if let Some(pid) = s.state.pid() {
                out.push(Action::SignalGroup {
                    pgid: pid,
                    signal: Signal::SIGKILL,
                });
                s.state = State::Stopping {
                    pid,
                    kill_at: None,
                    then_start: false,
                };
            }
        }
    }

    /// Sends the stop signal; SIGKILL follows after stop_timeout.
    fn begin_stop(&mut self, id: ServiceId, then_start: bool, now: Instant, out: &mut Vec<Action>) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let State::Running { pid, .. } = s.state else {
            return;
        };
        info!(
            "{}: stopping (sending {})",
            s.spec.name,
            s.spec.stop_signal.as_str()
        );
        out.push(Action::SignalGroup {
            pgid: pid,
            signal: s.spec.stop_signal,
        });
        // A stopped (SIGSTOP'd) process cannot act on the stop signal.
        out.push(Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGCONT,
        });
        let kill_at = Some(now + s.spec.stop_timeout);
        set_state(
            s,
            State::Stopping {
                pid,
                kill_at,
                then_start,
            },
            now,
        );
    }

    /// Brings states in line with wants after every event: stops unwanted
    /// services once their dependents are down, starts wanted ones once
    /// their requirements run, starts the main command once the services
    /// settled, and moves the shutdown along.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.phase == Phase::Exiting {
            return;
        }
        let main_active = matches!(self.main, Main::Running { .. } | Main::Spawning);
        let shutting_down = self.phase != Phase::Up;
        for id in 0..self.services.len() {
            if self.services[id].want_up {
                continue;
            }
            match self.services[id].state {
                State::Starting | State::Backoff { .. } => {
                    set_state(&mut self.services[id], State::Stopped, now)
                }
                State::Running { .. } => {
                    // Dependents stop first; during shutdown the main
                    // command goes before every service.
                    let blocked = (shutting_down && main_active)
                        || self
                            .dependents(id)
                            .any(|d| self.services[d].state.is_active());
                    if !blocked {
                        self.begin_stop(id, false, now, out);
                    }
                }
                State::Stopped
                | State::Spawning
                | State::Stopping { .. }
                | State::Failed { .. }
                | State::Exited => {}
            }
        }
        if !shutting_down {
            for k in 0..self.graph.order.len() {
                let id = self.graph.order[k];
                let ready = self.services[id].want_up
                    && self.services[id].state == State::Starting
                    && self
                        .requirements(id)
                        .all(|r| matches!(self.services[r].state, State::Running { .. }));
                if ready {
                    set_state(&mut self.services[id], State::Spawning, now);
                    out.push(Action::Spawn(id));
                }
            }
            if self.main == Main::Pending && (0..self.services.len()).all(|id| self.settled(id)) {
                self.main = Main::Spawning;
                out.push(Action::SpawnMain);
            }
        }
        if let Phase::Stopping { forced, .. } = self.phase {
            let all_down = !main_active && self.services.iter().all(|s| !s.state.is_active());
            if all_down {
                let (signal, until, killed) = if forced {
                    (Signal::SIGKILL, now + self.settings.kill_wait, true)
                } else {
                    (Signal::SIGTERM, now + self.settings.orphan_grace, false)
                };
                debug!(
                    "services are down; sending {} to what is left",
                    signal.as_str()
                );
                out.push(Action::SignalOrphans(signal));
                self.phase = Phase::Orphans { until, killed };
            }
        }
    }

    /// The service has come as far as it will without help: the main
    /// command may start.
    fn settled(&self, id: ServiceId) -> bool {
        let s = &self.services[id];
        match s.state {
            State::Running { .. } | State::Failed { .. } | State::Exited | State::Stopped => true,
            State::Starting => self.requirements(id).any(|r| self.dead_end(r)),
            State::Spawning | State::Stopping { .. } | State::Backoff { .. } => false,
        }
    }

    /// Down for good, or waiting on something that is.
    fn dead_end(&self, id: ServiceId) -> bool {
        let s = &self.services[id];
        s.state.is_dead_end()
            || (s.state == State::Starting && self.requirements(id).any(|r| self.dead_end(r)))
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
mod tests {
    use super::*;
    use crate::config::{Backoff, RestartPolicy, Source};
    use std::path::PathBuf;

    fn spec(name: &str, requires: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            source: Source::new(PathBuf::from(format!("{name}.toml")), ""),
            argv: vec!["/bin/true".into()],
            credentials: None,
            env: Vec::new(),
            working_dir: None,
            requires: requires.iter().map(|r| (r.to_string(), 1)).collect(),
            restart: RestartPolicy::Always,
            backoff: Backoff {
                limit: Some(2),
                ..Backoff::default()
            },
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(5),
            enabled: true,
            kind: crate::config::probes::Kind::Longrun,
            ready: None,
            health: None,
        }
    }

    /// A supervisor plus a clock and a pid counter, so tests read as
    /// scripts of events.
    struct Sim {
        sup: Supervisor,
        now: Instant,
        next_pid: Pid,
    }

    impl Sim {
        fn new(specs: Vec<ServiceSpec>, has_main: bool) -> Sim {
            let graph = Graph::build(&specs).unwrap();
            let now = Instant::now();
            let config = Config {
                services: specs,
                graph,
                warnings: Vec::new(),
            };
            Sim {
                sup: Supervisor::new(config, has_main, Settings::default(), now),
                now,
                next_pid: 100,
            }
        }

        fn id(&self, name: &str) -> ServiceId {
            self.sup.lookup(name).unwrap()
        }

        fn state(&self, name: &str) -> &State {
            &self.sup.services()[self.id(name)].state
        }

        fn pid(&self, name: &str) -> Pid {
            self.state(name).pid().unwrap()
        }

        fn handle(&mut self, e: Event) -> Vec<Action> {
            self.sup.handle(e, self.now)
        }

        /// Handles `e` and answers every Spawn like a runtime whose spawns
        /// succeed; returns all actions seen.
        fn run(&mut self, e: Event) -> Vec<Action> {
            let mut queue = vec![e];
            let mut seen = Vec::new();
            while let Some(e) = queue.pop() {
                for a in self.handle(e) {
                    match &a {
                        Action::Spawn(id) => {
                            self.next_pid += 1;
                            queue.insert(
                                0,
                                Event::Spawned {
                                    id: *id,
                                    pid: self.next_pid,
                                },
                            );
                        }
                        Action::SpawnMain => {
                            self.next_pid += 1;
                            queue.insert(0, Event::MainSpawned { pid: self.next_pid });
                        }
                        _ => {}
                    }
                    seen.push(a);
                }
            }
            seen
        }

        fn advance(&mut self, d: Duration) -> Vec<Action> {
            self.now += d;
            self.run(Event::Tick)
        }

        fn exit(&mut self, name: &str, status: ExitStatus) -> Vec<Action> {
            let pid = self.pid(name);
            self.run(Event::Reaped { pid, status })
        }
    }

    fn spawned(actions: &[Action]) -> Vec<ServiceId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn term(pid: Pid) -> Action {
        Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGTERM,
        }
    }

    #[test]
    fn boot_starts_in_dependency_order_and_skips_disabled() {
        let mut off = spec("off", &[]);
        off.enabled = false;
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[]), off], false);
        let actions = sim.run(Event::Boot);
        assert_eq!(spawned(&actions), vec![sim.id("db"), sim.id("app")]);
        assert!(matches!(sim.state("app"), State::Running { .. }));
        assert_eq!(sim.state("off"), &State::Stopped);
    }

    #[test]
    fn dependent_waits_while_requirement_is_not_running() {
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
        let db = sim.id("db");
        // Boot without answering the spawn: app must wait.
        let actions = sim.handle(Event::Boot);
        assert_eq!(spawned(&actions), vec![db]);
        assert_eq!(sim.state("app"), &State::Starting);
        let note = sim.sup.status(&[sim.id("app")], sim.now)[0].note.clone();
        assert_eq!(note.as_deref(), Some("waiting for db"));
        // A second event before the answer must not spawn db twice.
        assert!(spawned(&sim.handle(Event::Tick)).is_empty());
        let actions = sim.run(Event::Spawned { id: db, pid: 5 });
        assert_eq!(spawned(&actions), vec![sim.id("app")]);
    }

    #[test]
    fn crash_backs_off_then_restarts_and_budget_ends_in_failed() {
        let mut sim = Sim::new(vec![spec("svc", &[])], false);
        sim.run(Event::Boot);
        let pid = sim.pid("svc");
        let actions = sim.exit("svc", ExitStatus::Code(1));
        // Leftovers of the process group are killed.
        assert!(actions.contains(&Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL
        }));
        let State::Backoff { until } = *sim.state("svc") else {
            panic!("{:?}", sim.state("svc"))
        };
        assert_eq!(until - sim.now, Duration::from_millis(100));
        assert_eq!(sim.sup.next_deadline(), Some(until));
        // Not before the deadline.
        assert!(spawned(&sim.advance(Duration::from_millis(99))).is_empty());
        assert_eq!(spawned(&sim.advance(Duration::from_millis(1))), vec![0]);
        assert_eq!(sim.sup.services()[0].restarts, 1);
        // Second quick failure: 200 ms.
        sim.exit("svc", ExitStatus::Code(1));
        assert!(
            matches!(sim.state("svc"), State::Backoff { until } if *until - sim.now == Duration::from_millis(200))
        );
        sim.advance(Duration::from_millis(200));
        // Third: the budget of 2 restarts is spent.
        sim.exit("svc", ExitStatus::Signaled(Signal::SIGSEGV));
        let State::Failed { reason } = sim.state("svc") else {
            panic!("{:?}", sim.state("svc"))
        };
        assert!(reason.contains("3 quick exits"), "{reason}");
        assert_eq!(sim.sup.next_deadline(), None);
        // svctl start resets the budget.
        let actions = sim.run(Event::StartRequested(vec![0]));
        assert_eq!(spawned(&actions), vec![0]);
        assert_eq!(sim.sup.services()[0].failures, 0);
    }

    #[test]
    fn restart_policies() {
        let mut never = spec("never", &[]);
        never.restart = RestartPolicy::Never;
        let mut onf = spec("onf", &[]);
        onf.restart = RestartPolicy::OnFailure;
        let mut sim = Sim::new(vec![never, onf], false);
        sim.run(Event::Boot);
        sim.exit("never", ExitStatus::Code(1));
        assert_eq!(sim.state("never"), &State::Exited);
        sim.exit("onf", ExitStatus::Code(0));
        assert_eq!(sim.state("onf"), &State::Exited);
        assert_eq!(sim.sup.services()[1].last_exit, Some(ExitStatus::Code(0)));
    }

    #[test]
    fn spawn_failure_counts_against_the_budget() {
        let mut sim = Sim::new(vec![spec("svc", &[])], false);
        sim.handle(Event::Boot);
        sim.handle(Event::SpawnFailed {
            id: 0,
            error: "No such file".into(),
        });
        assert!(matches!(sim.state("svc"), State::Backoff { .. }));
        let mut never = spec("n", &[]);
        never.restart = RestartPolicy::Never;
        let mut sim = Sim::new(vec![never], false);
        sim.handle(Event::Boot);
        sim.handle(Event::SpawnFailed {
            id: 0,
            error: "No such file".into(),
        });
        assert!(
            matches!(sim.state("n"), State::Failed { reason } if reason.contains("No such file"))
        );
    }

    #[test]
    fn stop_escalates_to_sigkill_after_stop_timeout() {
        let mut sim = Sim::new(vec![spec("svc", &[])], false);
        sim.run(Event::Boot);
        let pid = sim.pid("svc");
        let actions = sim.run(Event::StopRequested(vec![0]));
        assert_eq!(actions.first(), Some(&term(pid)));
        assert!(sim.advance(Duration::from_millis(4999)).is_empty());
        let actions = sim.advance(Duration::from_millis(1));
        assert_eq!(
            actions,
            vec![Action::SignalGroup {
                pgid: pid,
                signal: Signal::SIGKILL
            }]
        );
        sim.run(Event::Reaped {
            pid,
            status: ExitStatus::Signaled(Signal::SIGKILL),
        });
        assert_eq!(sim.state("svc"), &State::Stopped);
        assert_eq!(sim.sup.progress(0, Goal::Down), Progress::Reached);
    }

    #[test]
    fn stop_takes_dependents_down_first_and_start_brings_requirements() {
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
        sim.run(Event::Boot);
        let (app, db) = (sim.pid("app"), sim.pid("db"));
        let actions = sim.run(Event::StopRequested(vec![sim.id("db")]));
        assert!(actions.contains(&term(app)));
        assert!(
            !actions.contains(&term(db)),
            "db must wait for app: {actions:?}"
        );
        let actions = sim.exit("app", ExitStatus::Code(0));
        assert!(actions.contains(&term(db)));
        sim.exit("db", ExitStatus::Code(0));
        assert_eq!(sim.state("app"), &State::Stopped);
        // Starting app brings db back first.
        let actions = sim.run(Event::StartRequested(vec![sim.id("app")]));
        assert_eq!(spawned(&actions), vec![sim.id("db"), sim.id("app")]);
    }

    #[test]
    fn restart_stops_and_starts_only_that_service() {
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
        sim.run(Event::Boot);
        let (app, db) = (sim.pid("app"), sim.pid("db"));
        let before = sim.sup.services()[sim.id("db")].starts;
        let goal = Goal::Up {
            starts_before: before,
        };
        let actions = sim.run(Event::RestartRequested(vec![sim.id("db")]));
        assert!(actions.contains(&term(db)) && !actions.contains(&term(app)));
        assert_eq!(sim.sup.progress(sim.id("db"), goal), Progress::Pending);
        let actions = sim.exit("db", ExitStatus::Code(0));
        assert_eq!(spawned(&actions), vec![sim.id("db")]);
        assert_eq!(sim.sup.progress(sim.id("db"), goal), Progress::Reached);
        assert_eq!(sim.pid("app"), app);
        assert_eq!(sim.sup.services()[sim.id("db")].restarts, 1);
    }

    #[test]
    fn shutdown_stops_in_reverse_order_then_orphans_then_exits_clean() {
        let mut sim = Sim::new(
            vec![spec("app", &["db"]), spec("db", &[]), spec("cron", &[])],
            false,
        );
        sim.run(Event::Boot);
        let (app, db, cron) = (sim.pid("app"), sim.pid("db"), sim.pid("cron"));
        let actions = sim.run(Event::SignalReceived(Signal::SIGTERM));
        // Independent services stop in parallel; db waits for app.
        assert!(actions.contains(&term(app)) && actions.contains(&term(cron)));
        assert!(!actions.contains(&term(db)));
        sim.exit("cron", ExitStatus::Signaled(Signal::SIGTERM));
        assert_eq!(
            sim.state("cron"),
            &State::Stopped,
            "no restart during shutdown"
        );
        assert!(sim.exit("app", ExitStatus::Code(0)).contains(&term(db)));
        let actions = sim.exit("db", ExitStatus::Code(0));
        assert!(actions.contains(&Action::SignalOrphans(Signal::SIGTERM)));
        assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(0)]);
        // Nothing after exit.
        assert!(sim.run(Event::Boot).is_empty());
    }

    #[test]
    fn shutdown_budget_and_second_signal_force_sigkill_and_exit_unclean() {
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
        sim.run(Event::Boot);
        let (app, db) = (sim.pid("app"), sim.pid("db"));
        sim.run(Event::ShutdownRequested);
        let kill = |pid| Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL,
        };
        let actions = sim.run(Event::SignalReceived(Signal::SIGINT));
        assert!(
            actions.contains(&kill(app)) && actions.contains(&kill(db)),
            "{actions:?}"
        );
        sim.exit("app", ExitStatus::Signaled(Signal::SIGKILL));
        let actions = sim.exit("db", ExitStatus::Signaled(Signal::SIGKILL));
        assert!(actions.contains(&Action::SignalOrphans(Signal::SIGKILL)));
        assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(EXIT_UNCLEAN)]);

        // The budget alone: 8 s minus the 500 ms left for orphans.
        let mut sim = Sim::new(vec![spec("stuck", &[])], false);
        sim.run(Event::Boot);
        let pid = sim.pid("stuck");
        sim.run(Event::SignalReceived(Signal::SIGTERM));
        // stop_timeout (5 s) comes first...
        assert_eq!(sim.advance(Duration::from_secs(5)), vec![kill(pid)]);
        // ...a process that survives SIGKILL is given up at the budget.
        assert_eq!(
            sim.sup.next_deadline(),
            Some(sim.now + Duration::from_millis(2500))
        );
        sim.advance(Duration::from_millis(2500));
        sim.exit("stuck", ExitStatus::Signaled(Signal::SIGKILL));
        assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(EXIT_UNCLEAN)]);
    }

    #[test]
    fn orphans_get_sigkill_after_grace_and_corral_gives_up_eventually() {
        let mut sim = Sim::new(vec![], false);
        sim.run(Event::Boot);
        assert_eq!(
            sim.run(Event::SignalReceived(Signal::SIGTERM)),
            vec![Action::SignalOrphans(Signal::SIGTERM)]
        );
        assert_eq!(
            sim.advance(Duration::from_millis(500)),
            vec![Action::SignalOrphans(Signal::SIGKILL)]
        );
        assert_eq!(sim.advance(Duration::from_secs(1)), vec![Action::Exit(0)]);
    }

    #[test]
    fn main_command_gets_signals_and_its_exit_ends_corral_with_its_code() {
        let mut sim = Sim::new(vec![spec("db", &[])], true);
        let actions = sim.run(Event::Boot);
        // The main command starts after the services.
        let pos = |a: &Action| actions.iter().position(|x| x == a);
        assert!(
            pos(&Action::Spawn(0)) < pos(&Action::SpawnMain) && pos(&Action::SpawnMain).is_some()
        );
        let main = sim.next_pid;
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
        ] {
            assert_eq!(
                sim.run(Event::SignalReceived(s)),
                vec![Action::Signal {
                    pid: main,
                    signal: s
                }]
            );
        }
        let db = sim.pid("db");
        let actions = sim.run(Event::Reaped {
            pid: main,
            status: ExitStatus::Signaled(Signal::SIGTERM),
        });
        assert!(actions.contains(&term(db)));
        sim.exit("db", ExitStatus::Code(0));
        assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(143)]);
    }

    #[test]
    fn main_waits_for_services_but_not_for_dead_ends() {
        let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], true);
        let actions = sim.handle(Event::Boot);
        assert!(!actions.contains(&Action::SpawnMain));
        // db cannot be executed and its policy gives up: app is blocked
        // for good, so the main command may start.
        let mut never = spec("db", &[]);
        never.restart = RestartPolicy::Never;
        let mut sim = Sim::new(vec![spec("app", &["db"]), never], true);
        sim.handle(Event::Boot);
        let actions = sim.handle(Event::SpawnFailed {
            id: sim.id("db"),
            error: "ENOENT".into(),
        });
        assert!(actions.contains(&Action::SpawnMain), "{actions:?}");
    }

    #[test]
    fn main_that_cannot_run_exits_with_its_code() {
        let mut sim = Sim::new(vec![], true);
        assert_eq!(sim.handle(Event::Boot), vec![Action::SpawnMain]);
        let actions = sim.handle(Event::MainSpawnFailed { code: 127 });
        assert_eq!(actions, vec![Action::SignalOrphans(Signal::SIGTERM)]);
        assert_eq!(sim.handle(Event::NoChildren), vec![Action::Exit(127)]);
    }

    #[test]
    fn orphan_exits_and_unknown_pids_change_nothing() {
        let mut sim = Sim::new(vec![spec("db", &[])], false);
        sim.run(Event::Boot);
        let before = sim.state("db").clone();
        let actions = sim.run(Event::Reaped {
            pid: 99999,
            status: ExitStatus::Code(0),
        });
        assert!(actions.is_empty());
        assert_eq!(sim.state("db"), &before);
        assert!(sim.run(Event::NoChildren).is_empty());
    }

    #[test]
    fn signal_request_reaches_main_processes_only_of_running_services() {
        let mut sim = Sim::new(vec![spec("a", &[]), spec("b", &[])], false);
        sim.run(Event::Boot);
        let a = sim.pid("a");
        sim.run(Event::StopRequested(vec![1]));
        let actions = sim.run(Event::SignalRequested {
            ids: vec![0, 1],
            signal: Signal::SIGHUP,
        });
        // b is stopping and still has its process: it gets the signal too.
        assert!(actions.contains(&Action::Signal {
            pid: a,
            signal: Signal::SIGHUP
        }));
    }
}
