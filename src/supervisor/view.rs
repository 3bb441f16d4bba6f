//! What the supervisor shows: status entries, notes, progress of svctl
//! requests, health complaints, and whether startup has settled. Read-only.

use super::*;

impl Supervisor {
    /// Where service `id` stands with respect to `goal`.
    pub fn progress(&self, id: ServiceId, goal: Goal) -> Progress {
        let Some(s) = self.services.get(id) else {
            return match goal {
                Goal::Gone => Progress::Reached,
                Goal::Up { .. } | Goal::Down => Progress::Failed("no such service".into()),
            };
        };
        match (goal, &s.state) {
            (Goal::Gone, _) => Progress::Pending,
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
        for id in self.services.ids_by_name() {
            let Some(s) = self.services.get(id) else {
                continue;
            };
            // Not wanted and not running: disabled, or stopped on purpose
            // (`svctl stop`): not a health failure. A failed oneshot is
            // still wanted, so it still counts.
            if !s.want_up && !s.state.is_active() {
                continue;
            }
            // A scheduled job is not a service that is up or down: its
            // runs' results are in status, not in health.
            if s.spec.schedule.is_some() {
                continue;
            }
            let oneshot_done =
                s.state == State::Exited && s.last_exit.is_some_and(|st| st.succeeded(&s.spec));
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
        self.chosen(ids)
            .iter()
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
                let health = s.health();
                Some(ServiceStatus {
                    name: s.spec.name.clone(),
                    state: self.shown_state(id, s).into(),
                    pid: s.state.pid(),
                    // Uptime means something only while a process exists.
                    uptime_ms: s
                        .state
                        .pid()
                        .map(|_| now.saturating_duration_since(since).as_millis() as u64),
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
                    .into(),
                    ready,
                    ready_ms,
                    health: health.map(|h| h.status.word().to_string()),
                    health_output: health.and_then(|h| h.output.clone()),
                    status_text: s.status_text.clone(),
                    // Known to the runtime's output, which fills it in.
                    dropped_lines: 0,
                    file_lost_lines: 0,
                    schedule: self.schedule_status(s),
                    actions: s.spec.actions.iter().map(|a| a.name.clone()).collect(),
                })
            })
            .collect()
    }

    /// The state word status shows: the state's, or `blocked` for a start
    /// that waits on a requirement that is down for good.
    fn shown_state(&self, id: ServiceId, s: &Service) -> &'static str {
        if s.state == State::Starting && self.blocker(id).is_some() {
            "blocked"
        } else {
            s.state.word()
        }
    }

    /// What metrics show of every service, by name; the log counters are
    /// the runtime's to fill in.
    pub fn samples(&self) -> Vec<crate::exposition::ServiceSample> {
        let unix = |t: jiff::Timestamp| t.as_nanosecond() as f64 / 1e9;
        self.services
            .ids_by_name()
            .into_iter()
            .filter_map(|id| {
                let s = self.services.get(id)?;
                let schedule = match (&s.spec.schedule, &s.schedule) {
                    (Some(_), Some(record)) => Some(crate::exposition::ScheduleSample {
                        next_run: (self.phase == Phase::Up)
                            .then(|| record.next_wall(self.clock))
                            .flatten()
                            .map(unix),
                        succeeded: record.succeeded,
                        failed: record.failed,
                        skipped: record.skipped,
                    }),
                    _ => None,
                };
                Some(crate::exposition::ServiceSample {
                    name: s.spec.name.clone(),
                    state: self.shown_state(id, s),
                    up: s.is_up(),
                    healthy: s.spec.health.as_ref().map(|_| {
                        s.health()
                            .is_some_and(|h| h.status == HealthStatus::Healthy)
                    }),
                    starts: s.starts,
                    restarts: s.restarts.into(),
                    failures: s.failures_total,
                    start_time: s.state.pid().and(s.started_wall).map(unix),
                    last_exit_code: s.last_exit.map(ExitStatus::as_exit_code),
                    schedule,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// Orphans reaped since boot.
    pub fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }

    /// `svctl actions`: the actions of `ids` (all services when empty),
    /// by service name, then in the order of their files.
    pub fn action_list(&self, ids: &[ServiceId]) -> Vec<crate::proto::ActionInfo> {
        let mut list = Vec::new();
        for id in self.chosen(ids) {
            let Some(s) = self.services.get(id) else {
                continue;
            };
            for a in &s.spec.actions {
                list.push(crate::proto::ActionInfo {
                    service: s.spec.name.clone(),
                    name: a.name.clone(),
                    description: a.description.clone(),
                    kind: a.kind_word().to_string(),
                    when: a.when.word().to_string(),
                    timeout_ms: match a.does {
                        crate::config::actions::Does::Command { .. } => {
                            Some(a.timeout.as_millis() as u64)
                        }
                        crate::config::actions::Does::Signal { .. } => None,
                    },
                    running: self.runs.running(id, Some(&a.name)),
                });
            }
        }
        list
    }

    /// `ids`, or every service by name when it is empty.
    fn chosen(&self, ids: &[ServiceId]) -> Vec<ServiceId> {
        if ids.is_empty() {
            self.services.ids_by_name()
        } else {
            ids.to_vec()
        }
    }

    /// Why a service is where it is, for status.
    pub(super) fn note(&self, id: ServiceId, now: Instant) -> Option<String> {
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
            } if !s.spec.is_oneshot() => Some(match &s.last_check {
                Some(why) => format!("waiting for readiness (last check: {why})"),
                None => "waiting for readiness".into(),
            }),
            State::Backoff { until } => Some(format!(
                "restart in {}",
                seconds(until.saturating_duration_since(now))
            )),
            State::Failed { reason } => Some(reason.clone()),
            State::Preparing { .. } => Some(format!(
                "running its {} prepare step(s)",
                s.spec.prepare.len()
            )),
            State::Finishing { status, .. } => Some(format!("running finish after {status}")),
            State::Stopping {
                then: AfterStop::Start,
                ..
            } => Some("restarting".into()),
            State::Stopping {
                then: AfterStop::Fail(reason),
                ..
            } => Some(reason.clone()),
            // Nothing to add to the state word.
            State::Running {
                ready: Readiness::Waiting { .. },
                ..
            }
            | State::Running {
                ready: Readiness::Ready { .. },
                ..
            }
            | State::Stopping {
                then: AfterStop::Down,
                ..
            }
            | State::Stopped
            | State::Spawning
            | State::Adopting { .. }
            | State::Exited => None,
        }
    }

    /// `name (state)` for every enabled service not yet settled.
    pub(super) fn pending_list(&self) -> Vec<String> {
        self.services
            .ids_by_name()
            .into_iter()
            .filter(|&id| !self.settled(id))
            .filter_map(|id| self.services.get(id))
            .map(|s| format!("{} ({})", s.spec.name, s.state.word()))
            .collect()
    }

    /// The service has come as far as it will without help: ready, done,
    /// or down for good.
    pub(super) fn settled(&self, id: ServiceId) -> bool {
        let Some(s) = self.services.get(id) else {
            return true;
        };
        if s.spec.schedule.is_some() {
            // Startup does not wait for a scheduled job, even at_start.
            return true;
        }
        match &s.state {
            State::Running { ready, .. } => matches!(ready, Readiness::Ready { .. }),
            State::Failed { .. } | State::Exited | State::Stopped => true,
            State::Starting => self.blocker(id).is_some(),
            State::Preparing { .. }
            | State::Spawning
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Finishing { .. }
            | State::Backoff { .. } => false,
        }
    }

    /// The requirement (direct or further down) that keeps `id` from ever
    /// starting without help: down for good and not up.
    pub(super) fn blocker(&self, id: ServiceId) -> Option<ServiceId> {
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

    pub(super) fn blocked_reason(&self, b: ServiceId) -> String {
        let Some(s) = self.services.get(b) else {
            return String::new();
        };
        match &s.state {
            State::Failed { reason } => format!("{} failed: {reason}", s.spec.name),
            State::Exited => match s.last_exit {
                Some(e) => format!("{} exited ({e})", s.spec.name),
                None => format!("{} exited", s.spec.name),
            },
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Running { .. }
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Finishing { .. }
            | State::Backoff { .. } => format!("{} is {}", s.spec.name, s.state.word()),
        }
    }
}

/// `850 ms`, `19.7 s`: how long until something, as people read it.
pub(super) fn seconds(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
