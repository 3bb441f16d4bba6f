//! The supervisor: a pure state machine over all services, the main command
//! and the shutdown sequence.
//!
//! It takes an `Event` and the current time and returns `Action`s. It makes
//! no system calls (it only logs), so every transition is unit-tested
//! without processes; `crate::runtime` performs the actions and reports their
//! results back as events.

pub mod event;
pub mod health;
pub mod policy;
pub mod state;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

use crate::config::probes::{Kind, OnUnhealthy, ReadyMethod};
use crate::config::{Config, ServiceSpec};
use crate::graph::Graph;
use crate::proto::ServiceStatus;
pub use event::{Action, Event, ExitStatus, Notice, Pid, ProbeResult, Purpose, ServiceId};
use health::{HealthCheck, HealthStatus};
use policy::Verdict;
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
const ADOPT_RETRY: Duration = Duration::from_millis(100);

/// Exit code when a required oneshot failed at boot.
pub const EXIT_ONESHOT_FAILED: i32 = 3;

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
    /// Processes started since boot; lets `restart` wait for a new one,
    /// and tells probe results of an earlier run apart.
    pub starts: u64,
    pub last_exit: Option<ExitStatus>,
    /// When the state last changed.
    pub changed_at: Instant,
    /// The last STATUS= the service sent over the notify protocol.
    pub status_text: Option<String>,
}

impl Service {
    /// Ready (longrun) or done (oneshot): what dependents wait for.
    fn is_up(&self) -> bool {
        match (&self.state, self.spec.kind) {
            (State::Running { ready, .. }, Kind::Longrun) => {
                matches!(ready, Readiness::Ready { .. })
            }
            // An optional oneshot that failed does not hold anything up.
            (State::Failed { .. } | State::Exited, Kind::Oneshot { optional: true, .. }) => true,
            (State::Exited, Kind::Oneshot { .. }) => {
                self.last_exit.is_some_and(ExitStatus::success)
            }
            _ => false,
        }
    }

    fn health(&self) -> Option<&HealthCheck> {
        match &self.state {
            State::Running {
                ready: Readiness::Ready { health, .. },
                ..
            } => health.as_ref(),
            _ => None,
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
}

/// One line of `svctl health`: what is wrong with a service, if anything.
pub type Complaint = (String, String);

/// All services and the shutdown sequence.
#[derive(Debug)]
pub struct Supervisor {
    services: Vec<Service>,
    graph: Graph,
    pids: HashMap<Pid, Owner>,
    main: Main,
    phase: Phase,
    settings: Settings,
    startup: Startup,
    /// Some service needed SIGKILL during shutdown, or the budget ran out.
    unclean: bool,
    /// A required oneshot failed at boot and took the container down.
    oneshot_failed: bool,
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
                status_text: None,
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
            startup: Startup::Pending {
                since: now,
                nagged: false,
            },
            unclean: false,
            oneshot_failed: false,
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
                self.startup = Startup::Pending {
                    since: now,
                    nagged: false,
                };
                for s in &mut self.services {
                    if s.spec.enabled {
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
        }
        self.reconcile(now, &mut out);
        out
    }

    /// The earliest time at which `Event::Tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let services = self.services.iter().flat_map(|s| {
            let (a, b) = match &s.state {
                State::Backoff { until } => (Some(*until), None),
                State::Adopting {
                    until, next_try, ..
                } => (Some(*until), *next_try),
                State::Stopping { kill_at, .. } => (*kill_at, None),
                State::Running {
                    ready:
                        Readiness::Waiting {
                            deadline,
                            next_probe,
                        },
                    ..
                } => (*deadline, *next_probe),
                State::Running {
                    ready: Readiness::Ready { health, .. },
                    ..
                } => (health.as_ref().and_then(HealthCheck::deadline), None),
                _ => (None, None),
            };
            a.into_iter().chain(b)
        });
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
        services.chain(phase).chain(startup).min()
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
            (Goal::Up { starts_before }, _) if s.is_up() && s.starts > starts_before => {
                Progress::Reached
            }
            (Goal::Up { .. }, State::Failed { reason }) => {
                Progress::Failed(format!("failed: {reason}"))
            }
            (Goal::Up { .. }, State::Exited) => Progress::Failed(match s.last_exit {
                Some(e) if s.spec.is_oneshot() => format!("oneshot failed ({e})"),
                Some(e) => format!("exited ({e}) and its restart policy keeps it down"),
                None => "exited".into(),
            }),
            (Goal::Up { .. }, State::Stopped) => {
                Progress::Failed(if s.spec.enabled || s.starts > 0 {
                    "is stopped".into()
                } else {
                    "is disabled and was not started (svctl start starts it)".into()
                })
            }
            (Goal::Up { .. }, State::Starting) => match self.blocker(id) {
                Some(b) => Progress::Failed(format!("blocked: {}", self.blocked_reason(b))),
                None => Progress::Pending,
            },
            (Goal::Up { .. }, _) => Progress::Pending,
        }
    }

    /// What `svctl health` reports: every enabled service that is not up,
    /// ready and healthy, and every oneshot that did not succeed, each with
    /// what is wrong. Empty means healthy.
    pub fn complaints(&self) -> Vec<Complaint> {
        let mut out = Vec::new();
        if self.phase != Phase::Up {
            out.push(("corral".to_string(), "is shutting down".to_string()));
        }
        for (id, s) in self.services.iter().enumerate() {
            if !s.spec.enabled && s.starts == 0 {
                continue;
            }
            let oneshot_done =
                s.state == State::Exited && s.last_exit.is_some_and(ExitStatus::success);
            let problem = match (&s.state, s.health()) {
                (_, Some(h)) if h.status == HealthStatus::Unhealthy => Some(format!(
                    "unhealthy: {}",
                    h.output.as_deref().unwrap_or("no output")
                )),
                _ if s.spec.is_oneshot() && oneshot_done => None,
                (State::Failed { reason }, _) if s.spec.is_oneshot() => {
                    Some(format!("oneshot failed: {reason}"))
                }
                _ if s.is_up() && !s.spec.is_oneshot() => None,
                (State::Running { .. }, _) => Some("running, not ready yet".to_string()),
                _ => Some(match self.progress(id, Goal::Up { starts_before: 0 }) {
                    Progress::Failed(why) => why,
                    _ => s.state.word().to_string(),
                }),
            };
            if let Some(p) = problem {
                out.push((s.spec.name.clone(), p));
            }
        }
        out
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
                let (ready, ready_ms) = match &s.state {
                    State::Running {
                        started,
                        ready: Readiness::Ready { at, .. },
                        ..
                    } => (
                        true,
                        Some(at.saturating_duration_since(*started).as_millis() as u64),
                    ),
                    _ => (s.is_up(), None),
                };
                let blocked = s.state == State::Starting && self.blocker(id).is_some();
                let health = s.health();
                Some(ServiceStatus {
                    name: s.spec.name.clone(),
                    state: if blocked { "blocked" } else { s.state.word() }.to_string(),
                    pid: s.state.pid(),
                    uptime_ms: Some(now.saturating_duration_since(since).as_millis() as u64),
                    restarts: s.restarts,
                    last_exit: s.last_exit.map(ExitStatus::to_proto),
                    enabled: s.spec.enabled,
                    user: s.spec.credentials.as_ref().map(|c| c.display.clone()),
                    note: self.note(id, now),
                    kind: if s.spec.is_oneshot() {
                        "oneshot"
                    } else {
                        "longrun"
                    }
                    .to_string(),
                    ready,
                    ready_ms,
                    health: health.map(|h| h.status.word().to_string()),
                    health_output: health.and_then(|h| h.output.clone()),
                    status_text: s.status_text.clone(),
                    // Known to the runtime's output, which fills it in.
                    dropped_lines: 0,
                })
            })
            .collect()
    }

    /// Why a service is where it is, for status.
    fn note(&self, id: ServiceId, now: Instant) -> Option<String> {
        let s = self.services.get(id)?;
        match &s.state {
            State::Starting => {
                if let Some(b) = self.blocker(id) {
                    return Some(format!("blocked: {}", self.blocked_reason(b)));
                }
                let waiting: Vec<&str> = self
                    .requirements(id)
                    .filter_map(|r| self.services.get(r))
                    .filter(|r| !r.is_up())
                    .map(|r| r.spec.name.as_str())
                    .collect();
                (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))
            }
            State::Running {
                ready: Readiness::Waiting { .. },
                ..
            } if !s.spec.is_oneshot() => Some("waiting for readiness".into()),
            State::Backoff { until } => Some(format!(
                "restart in {} ms",
                until.saturating_duration_since(now).as_millis()
            )),
            State::Failed { reason } => Some(reason.clone()),
            State::Stopping {
                then: AfterStop::Start,
                ..
            } => Some("restarting".into()),
            State::Stopping {
                then: AfterStop::Fail(reason),
                ..
            } => Some(reason.clone()),
            _ => None,
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
        self.graph.requires.get(id).into_iter().flatten().copied()
    }

    fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph.dependents.get(id).into_iter().flatten().copied()
    }

    fn on_spawned(&mut self, id: ServiceId, pid: Pid, now: Instant, out: &mut Vec<Action>) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        self.pids.insert(pid, Owner::Service(id));
        s.starts += 1;
        s.status_text = None;
        info!("{}: started, pid {pid}", s.spec.name);
        let ready = match (s.spec.kind, &s.spec.ready) {
            (Kind::Oneshot { timeout, .. }, _) => Readiness::Waiting {
                deadline: timeout.map(|t| now + t),
                next_probe: None,
            },
            // A launcher is not the daemon: ready (and checked) once the
            // daemon is adopted from the pidfile.
            (Kind::Longrun, _) if s.spec.pidfile.is_some() => Readiness::Waiting {
                deadline: None,
                next_probe: None,
            },
            (Kind::Longrun, None) => Readiness::Ready {
                at: now,
                health: s
                    .spec
                    .health
                    .as_ref()
                    .map(|h| HealthCheck::new(h, now, now)),
            },
            (Kind::Longrun, Some(r)) => {
                if let ReadyMethod::Poll(_) = r.method {
                    out.push(Action::Probe {
                        id,
                        run: s.starts,
                        purpose: Purpose::Ready,
                    });
                }
                Readiness::Waiting {
                    deadline: Some(now + r.timeout),
                    next_probe: None,
                }
            }
        };
        // Spawned only answers Spawning; a stop requested meanwhile is
        // carried out by reconcile, which sees the process running.
        set_state(
            s,
            State::Running {
                pid,
                started: now,
                ready,
            },
            now,
        );
    }

    fn on_spawn_failed(&mut self, id: ServiceId, error: &str, now: Instant, out: &mut Vec<Action>) {
        let up = self.phase == Phase::Up;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        warn!("{}: cannot start: {error}", s.spec.name);
        let reason = format!("cannot start: {error}");
        if s.spec.is_oneshot() {
            set_state(
                s,
                State::Failed {
                    reason: reason.clone(),
                },
                now,
            );
            self.oneshot_failure(id, &reason, now, out);
            return;
        }
        let (verdict, failures) = policy::after_exit(
            s.spec.restart,
            &s.spec.backoff,
            None,
            Duration::ZERO,
            s.failures,
        );
        s.failures = failures;
        let next = match verdict {
            Verdict::Restart(delay) if s.want_up && up => State::Backoff { until: now + delay },
            Verdict::Restart(_) => State::Stopped,
            Verdict::Stay | Verdict::GiveUp => State::Failed { reason },
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
        let launcher_done = s.spec.pidfile.is_some()
            && status.success()
            && s.want_up
            && up
            && matches!(s.state, State::Running { .. });
        // The main process is gone; whatever it left in its process group
        // would hold ports and files against the next start. Not so for a
        // daemonizing launcher: what it left is the daemon.
        if !launcher_done {
            out.push(Action::SignalGroup {
                pgid: pid,
                signal: Signal::SIGKILL,
            });
        }
        cancel_probes(id, &s.spec, out);
        let name = s.spec.name.clone();
        let mut oneshot_failed = None;
        let next = match std::mem::replace(&mut s.state, State::Stopped) {
            State::Running { .. } if !s.want_up || !up => State::Stopped,
            State::Running { started, .. } if launcher_done => {
                debug!("{name}: launcher done; reading its pidfile");
                out.push(Action::ReadPidfile { id, run: s.starts });
                State::Adopting {
                    started,
                    until: now + ADOPT_TIMEOUT,
                    next_try: None,
                }
            }
            State::Running { started, .. } if s.spec.is_oneshot() => {
                let took = now.saturating_duration_since(started).as_millis();
                if status.success() {
                    info!("{name}: done in {took} ms");
                    State::Exited
                } else {
                    let reason = format!("{status} after {took} ms");
                    warn!("{name}: oneshot failed: {reason}");
                    oneshot_failed = Some(reason.clone());
                    State::Failed { reason }
                }
            }
            State::Running { started, .. } => {
                let ran_for = now.saturating_duration_since(started);
                after_failure(s, Some(status), ran_for, None, now)
            }
            State::Stopping { then, .. } => {
                info!("{name}: stopped ({status})");
                match then {
                    AfterStop::Start if s.want_up && up => {
                        s.restarts += 1;
                        s.failures = 0;
                        State::Starting
                    }
                    AfterStop::Down | AfterStop::Start => State::Stopped,
                    AfterStop::Fail(reason) if s.spec.is_oneshot() => {
                        oneshot_failed = Some(reason.clone());
                        State::Failed { reason }
                    }
                    AfterStop::Fail(_) if !s.want_up || !up => State::Stopped,
                    AfterStop::Fail(reason) => {
                        after_failure(s, None, Duration::ZERO, Some(reason), now)
                    }
                }
            }
            // The pid table only holds running processes.
            other @ (State::Stopped
            | State::Starting
            | State::Spawning
            | State::Adopting { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited) => other,
        };
        s.changed_at = now;
        debug!("{name}: now {}", next.word());
        s.state = next;
        if let Some(reason) = oneshot_failed {
            self.oneshot_failure(id, &reason, now, out);
        }
    }

    /// A oneshot failed: its dependents stay blocked, and a required one
    /// that failed on its boot run takes the container down.
    fn oneshot_failure(
        &mut self,
        id: ServiceId,
        reason: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get(id) else {
            return;
        };
        let name = &s.spec.name;
        match s.spec.kind {
            Kind::Oneshot { optional: true, .. } => {
                warn!("{name}: optional oneshot failed ({reason}); what requires it starts anyway")
            }
            Kind::Oneshot { .. } if s.spec.enabled && s.starts == 1 && self.phase == Phase::Up => {
                tracing::error!(
                    "{name}: required oneshot failed ({reason}); stopping the container (exit code {EXIT_ONESHOT_FAILED}); \
                     set optional = true in its file to carry on instead"
                );
                self.oneshot_failed = true;
                self.begin_shutdown(now, out);
            }
            _ => warn!(
                "{name}: oneshot failed ({reason}); what requires it is blocked until it succeeds"
            ),
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let up = self.phase == Phase::Up;
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let mut failed_starts = Vec::new();
        for (id, s) in self.services.iter_mut().enumerate() {
            let run = s.starts;
            match &mut s.state {
                State::Adopting { next_try, .. } if next_try.is_some_and(|t| t <= now) => {
                    *next_try = None;
                    out.push(Action::ReadPidfile { id, run });
                }
                State::Backoff { until } if *until <= now => {
                    if s.want_up && up {
                        s.restarts += 1;
                        set_state(s, State::Starting, now);
                    } else {
                        set_state(s, State::Stopped, now);
                    }
                }
                State::Stopping {
                    pid, kill_at: at, ..
                } if at.is_some_and(|at| at <= now) => {
                    warn!(
                        "{}: did not stop within {:?}; sending SIGKILL",
                        s.spec.name, s.spec.stop_timeout
                    );
                    signal_service(&s.spec, *pid, Signal::SIGKILL, out);
                    *at = None;
                    if stopping {
                        self.unclean = true;
                    }
                }
                State::Running {
                    started,
                    ready:
                        Readiness::Waiting {
                            deadline,
                            next_probe,
                        },
                    ..
                } => {
                    if deadline.is_some_and(|d| d <= now) {
                        let took = now.saturating_duration_since(*started);
                        let reason = if s.spec.is_oneshot() {
                            format!("timed out after {} ms", took.as_millis())
                        } else {
                            format!("not ready within {} ms", took.as_millis())
                        };
                        warn!("{}: {reason}; stopping it", s.spec.name);
                        failed_starts.push((id, reason));
                    } else if next_probe.is_some_and(|t| t <= now) {
                        *next_probe = None;
                        out.push(Action::Probe {
                            id,
                            run,
                            purpose: Purpose::Ready,
                        });
                    }
                }
                State::Running {
                    ready:
                        Readiness::Ready {
                            health: Some(h), ..
                        },
                    ..
                } => {
                    let Some(spec) = &s.spec.health else { continue };
                    if h.next.is_some_and(|t| t <= now) {
                        h.begin(spec, now);
                        out.push(Action::Probe {
                            id,
                            run,
                            purpose: Purpose::Health,
                        });
                    } else if h.in_flight_until.is_some_and(|t| t <= now) {
                        out.push(Action::CancelProbe {
                            id,
                            purpose: Purpose::Health,
                        });
                        let why = format!("check timed out after {} ms", spec.timeout.as_millis());
                        if h.record(spec, false, why.clone(), now) {
                            warn!("{}: unhealthy: {why}", s.spec.name);
                            if spec.on_unhealthy == OnUnhealthy::Restart {
                                failed_starts.push((id, String::new()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for (id, reason) in failed_starts {
            // An empty reason marks a restart for an unhealthy service.
            let then = if reason.is_empty() {
                AfterStop::Start
            } else {
                AfterStop::Fail(reason)
            };
            if let Some(s) = self.services.get(id) {
                cancel_probes(id, &s.spec, out);
            }
            self.begin_stop(id, then, now, out);
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
        if let Startup::Pending {
            since,
            nagged: false,
        } = self.startup
            && since + self.settings.report_after <= now
        {
            self.startup = Startup::Pending {
                since,
                nagged: true,
            };
            info!(
                "still starting after {} s: {}",
                self.settings.report_after.as_secs(),
                self.pending_list().join(", ")
            );
        }
    }

    fn on_probe_done(&mut self, result: ProbeResult, now: Instant, out: &mut Vec<Action>) {
        let ProbeResult {
            id,
            run,
            purpose,
            ok,
            output,
        } = result;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        if s.starts != run {
            return;
        }
        let mut restart = false;
        match (purpose, &mut s.state) {
            (
                Purpose::Ready,
                State::Running {
                    ready: Readiness::Waiting { next_probe, .. },
                    ..
                },
            ) => {
                if ok {
                    mark_ready(s, now);
                } else if let Some(r) = &s.spec.ready {
                    debug!("{}: not ready yet: {output}", s.spec.name);
                    *next_probe = Some(now + r.interval);
                }
            }
            (
                Purpose::Health,
                State::Running {
                    ready:
                        Readiness::Ready {
                            health: Some(h), ..
                        },
                    ..
                },
            ) => {
                let Some(spec) = &s.spec.health else { return };
                let was = h.status;
                if h.record(spec, ok, output.clone(), now) {
                    warn!(
                        "{}: unhealthy after {} failed checks: {output}",
                        s.spec.name, h.failures
                    );
                    restart = spec.on_unhealthy == OnUnhealthy::Restart;
                } else if was == HealthStatus::Unhealthy && h.status == HealthStatus::Healthy {
                    info!("{}: healthy again", s.spec.name);
                }
            }
            _ => {}
        }
        if restart {
            info!("{}: restarting (on_unhealthy = \"restart\")", s.spec.name);
            self.begin_stop(id, AfterStop::Start, now, out);
        }
    }

    fn on_adopted(
        &mut self,
        id: ServiceId,
        run: u64,
        pid: Pid,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let State::Adopting { started, .. } = s.state else {
            return;
        };
        if s.starts != run {
            return;
        }
        info!("{}: supervising pid {pid} from its pidfile", s.spec.name);
        self.pids.insert(pid, Owner::Service(id));
        let ready = match &s.spec.ready {
            None => Readiness::Ready {
                at: now,
                health: s
                    .spec
                    .health
                    .as_ref()
                    .map(|h| HealthCheck::new(h, started, now)),
            },
            Some(r) => {
                if let ReadyMethod::Poll(_) = r.method {
                    out.push(Action::Probe {
                        id,
                        run,
                        purpose: Purpose::Ready,
                    });
                }
                Readiness::Waiting {
                    deadline: Some(now + r.timeout),
                    next_probe: None,
                }
            }
        };
        set_state(
            s,
            State::Running {
                pid,
                started,
                ready,
            },
            now,
        );
    }

    fn on_adopt_failed(&mut self, id: ServiceId, run: u64, reason: &str, now: Instant) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        if s.starts != run {
            return;
        }
        if let State::Adopting { started, until, .. } = s.state {
            if now < until && s.want_up {
                debug!("{}: pidfile not usable yet: {reason}", s.spec.name);
                s.state = State::Adopting {
                    started,
                    until,
                    next_try: Some(now + ADOPT_RETRY),
                };
            } else if !s.want_up {
                set_state(s, State::Stopped, now);
            } else {
                let why = format!("pidfile: {reason}");
                warn!("{}: {why}", s.spec.name);
                let next = after_failure(s, None, Duration::ZERO, Some(why), now);
                set_state(s, next, now);
            }
        }
    }

    fn on_notified(&mut self, id: ServiceId, run: u64, message: Notice, now: Instant) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        if s.starts != run {
            return;
        }
        if let Some(text) = message.status {
            debug!("{}: status: {text}", s.spec.name);
            s.status_text = Some(text);
        }
        if message.stopping {
            info!("{}: says it is stopping", s.spec.name);
        }
        if let Some(pid) = message.main_pid {
            debug!(
                "{}: MAINPID={pid} noted; corral keeps supervising the process it started",
                s.spec.name
            );
        }
        let waiting = matches!(
            s.state,
            State::Running {
                ready: Readiness::Waiting { .. },
                ..
            }
        );
        let speaks = matches!(
            s.spec.ready.as_ref().map(|r| &r.method),
            Some(ReadyMethod::Notify | ReadyMethod::Fd(_))
        );
        if message.ready && waiting && speaks {
            mark_ready(s, now);
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
            let done_oneshot = s.spec.is_oneshot() && r != id && s.is_up();
            match &mut s.state {
                State::Failed { .. } => {
                    s.failures = 0;
                    set_state(s, State::Starting, now);
                }
                // A oneshot that succeeded stays done for what requires
                // it; started by name, it runs again.
                State::Exited if done_oneshot => {}
                State::Stopped | State::Exited => set_state(s, State::Starting, now),
                State::Backoff { .. } => {
                    s.restarts += 1;
                    set_state(s, State::Starting, now);
                }
                State::Stopping { then, .. } => *then = AfterStop::Start,
                State::Starting
                | State::Spawning
                | State::Adopting { .. }
                | State::Running { .. } => {}
            }
        }
    }

    fn request_stop(&mut self, id: ServiceId) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        s.want_up = false;
        if let State::Stopping { then, .. } = &mut s.state {
            *then = AfterStop::Down;
        }
    }

    fn request_restart(&mut self, id: ServiceId, now: Instant, out: &mut Vec<Action>) {
        self.request_start(id, now);
        if let Some(State::Running { .. }) = self.services.get(id).map(|s| &s.state) {
            self.begin_stop(id, AfterStop::Start, now, out);
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
        self.startup = Startup::Done;
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
                signal_service(&s.spec, pid, Signal::SIGKILL, out);
                s.state = State::Stopping {
                    pid,
                    kill_at: None,
                    then: AfterStop::Down,
                };
            }
        }
    }

    /// Sends the stop signal; SIGKILL follows after stop_timeout.
    fn begin_stop(&mut self, id: ServiceId, then: AfterStop, now: Instant, out: &mut Vec<Action>) {
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
        signal_service(&s.spec, pid, s.spec.stop_signal, out);
        // A stopped (SIGSTOP'd) process cannot act on the stop signal.
        signal_service(&s.spec, pid, Signal::SIGCONT, out);
        let kill_at = Some(now + s.spec.stop_timeout);
        set_state(s, State::Stopping { pid, kill_at, then }, now);
    }

    /// Brings states in line with wants after every event: stops unwanted
    /// services once their dependents are down, starts wanted ones once
    /// their requirements are up, starts the main command once the services
    /// are ready, and moves the shutdown along.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.phase == Phase::Exiting {
            return;
        }
        let main_active = matches!(self.main, Main::Running { .. } | Main::Spawning);
        let shutting_down = self.phase != Phase::Up;
        for id in 0..self.services.len() {
            let Some(s) = self.services.get_mut(id) else {
                continue;
            };
            if s.want_up {
                continue;
            }
            match s.state {
                State::Starting | State::Backoff { .. } => set_state(s, State::Stopped, now),
                State::Running { .. } => {
                    // Dependents stop first; during shutdown the main
                    // command goes before every service.
                    let blocked = (shutting_down && main_active)
                        || self.dependents(id).any(|d| self.active(d));
                    if !blocked {
                        self.begin_stop(id, AfterStop::Down, now, out);
                    }
                }
                State::Stopped
                | State::Spawning
                | State::Adopting { .. }
                | State::Stopping { .. }
                | State::Failed { .. }
                | State::Exited => {}
            }
        }
        if !shutting_down {
            for id in self.graph.order.clone() {
                let can_start = self.requirements(id).all(|r| self.up(r));
                let Some(s) = self.services.get_mut(id) else {
                    continue;
                };
                if s.want_up && s.state == State::Starting && can_start {
                    set_state(s, State::Spawning, now);
                    out.push(Action::Spawn(id));
                }
            }
            self.check_startup(now, out);
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

    /// Logs the startup summary once everything settled, and starts the
    /// main command then (or once `start_timeout` ran out).
    fn check_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Startup::Pending { since, .. } = self.startup else {
            self.start_main(out);
            return;
        };
        let took = now.saturating_duration_since(since).as_millis();
        if (0..self.services.len()).all(|id| self.settled(id)) {
            self.startup = Startup::Done;
            let enabled: Vec<&Service> = self.services.iter().filter(|s| s.spec.enabled).collect();
            let troubled: Vec<String> = self
                .status(&[], now)
                .into_iter()
                .filter(|st| st.enabled && !st.ready)
                .map(|st| format!("{} {}", st.name, st.state))
                .collect();
            if troubled.is_empty() && !enabled.is_empty() {
                info!("all {} services ready in {took} ms", enabled.len());
            } else if !troubled.is_empty() {
                warn!(
                    "startup finished in {took} ms; {} of {} services not ready: {}",
                    troubled.len(),
                    enabled.len(),
                    troubled.join(", ")
                );
            }
            self.start_main(out);
        } else if self.main == Main::Pending && since + self.settings.start_timeout <= now {
            warn!(
                "starting the main command after {} s although not everything is ready: {}",
                self.settings.start_timeout.as_secs(),
                self.pending_list().join(", ")
            );
            self.start_main(out);
        }
    }

    fn start_main(&mut self, out: &mut Vec<Action>) {
        if self.main == Main::Pending {
            self.main = Main::Spawning;
            out.push(Action::SpawnMain);
        }
    }

    /// `name (state)` for every enabled service not yet settled.
    fn pending_list(&self) -> Vec<String> {
        self.services
            .iter()
            .enumerate()
            .filter(|&(id, _)| !self.settled(id))
            .map(|(_, s)| format!("{} ({})", s.spec.name, s.state.word()))
            .collect()
    }

    /// The service has come as far as it will without help: ready, done,
    /// or down for good.
    fn settled(&self, id: ServiceId) -> bool {
        let Some(s) = self.services.get(id) else {
            return true;
        };
        match &s.state {
            State::Running { ready, .. } => matches!(ready, Readiness::Ready { .. }),
            State::Failed { .. } | State::Exited | State::Stopped => true,
            State::Starting => self.blocker(id).is_some(),
            State::Spawning
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. } => false,
        }
    }

    /// The requirement (direct or further down) that keeps `id` from ever
    /// starting without help: down for good and not up.
    fn blocker(&self, id: ServiceId) -> Option<ServiceId> {
        for r in self.requirements(id) {
            let Some(s) = self.services.get(r) else {
                continue;
            };
            if s.is_up() {
                continue;
            }
            if s.state.is_dead_end() {
                return Some(r);
            }
            if s.state == State::Starting
                && let Some(b) = self.blocker(r)
            {
                return Some(b);
            }
        }
        None
    }

    fn blocked_reason(&self, b: ServiceId) -> String {
        let Some(s) = self.services.get(b) else {
            return String::new();
        };
        match &s.state {
            State::Failed { reason } => format!("{} failed: {reason}", s.spec.name),
            State::Exited => match s.last_exit {
                Some(e) => format!("{} exited ({e})", s.spec.name),
                None => format!("{} exited", s.spec.name),
            },
            _ => format!("{} is {}", s.spec.name, s.state.word()),
        }
    }

    fn exit(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Exiting;
        out.push(Action::Exit(self.exit_code()));
    }
}

/// The state after a longrun failed on its own (`status` from its exit)
/// or did not become ready (`reason`), by its restart policy.
fn after_failure(
    s: &mut Service,
    status: Option<ExitStatus>,
    ran_for: Duration,
    reason: Option<String>,
    now: Instant,
) -> State {
    let (verdict, failures) =
        policy::after_exit(s.spec.restart, &s.spec.backoff, status, ran_for, s.failures);
    s.failures = failures;
    let what = match (&reason, status) {
        (Some(r), _) => r.clone(),
        (None, Some(st)) => st.to_string(),
        (None, None) => "failed".to_string(),
    };
    match verdict {
        Verdict::Restart(delay) => {
            warn!(
                "{}: {what}; restarting in {} ms",
                s.spec.name,
                delay.as_millis()
            );
            State::Backoff { until: now + delay }
        }
        Verdict::Stay if reason.is_none() => {
            info!(
                "{}: {what}; not restarted (restart = {:?})",
                s.spec.name, s.spec.restart
            );
            State::Exited
        }
        Verdict::Stay => State::Failed { reason: what },
        Verdict::GiveUp => {
            let reason =
                format!("{failures} quick exits in a row, last: {what}; svctl start resets");
            warn!("{}: failed: {reason}", s.spec.name);
            State::Failed { reason }
        }
    }
}

/// Waiting -> Ready, with health checks from now on.
fn mark_ready(s: &mut Service, now: Instant) {
    if let State::Running {
        pid,
        started,
        ready: Readiness::Waiting { .. },
    } = s.state
    {
        info!(
            "{}: ready in {} ms",
            s.spec.name,
            now.saturating_duration_since(started).as_millis()
        );
        let health = s
            .spec
            .health
            .as_ref()
            .map(|h| HealthCheck::new(h, started, now));
        s.state = State::Running {
            pid,
            started,
            ready: Readiness::Ready { at: now, health },
        };
    }
}

/// Signals a service's process group; an adopted daemon (pidfile) may not
/// lead a group of its own, so it gets the signal directly as well.
fn signal_service(spec: &ServiceSpec, pid: Pid, signal: Signal, out: &mut Vec<Action>) {
    out.push(Action::SignalGroup { pgid: pid, signal });
    if spec.pidfile.is_some() {
        out.push(Action::Signal { pid, signal });
    }
}

/// Drops the checks a service may have in flight.
fn cancel_probes(id: ServiceId, spec: &ServiceSpec, out: &mut Vec<Action>) {
    if matches!(
        spec.ready.as_ref().map(|r| &r.method),
        Some(ReadyMethod::Poll(_))
    ) {
        out.push(Action::CancelProbe {
            id,
            purpose: Purpose::Ready,
        });
    }
    if spec.health.is_some() {
        out.push(Action::CancelProbe {
            id,
            purpose: Purpose::Health,
        });
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
