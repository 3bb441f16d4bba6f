//! Process life: a spawn's outcome, an exit and what the restart policy
//! makes of it, the timers of backoff, stop escalation, readiness and
//! health deadlines, and stopping a service.

use super::policy::after_failure;
use super::readiness::daemon_readiness;
use super::*;

impl Supervisor {
    pub(super) fn on_spawned(
        &mut self,
        id: ServiceId,
        pid: Pid,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        match &s.state {
            State::Spawning
            | State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited => {}
            // It has a process (or is finding its daemon) already: a
            // second one would be lost track of. Kill it; its exit is
            // reaped as an orphan's.
            State::Running { .. }
            | State::Stopping { .. }
            | State::Adopting { .. }
            | State::Finishing { .. } => {
                warn!(
                    "{}: unexpected second process {pid} while {}; killing it",
                    s.spec.name,
                    s.state.word()
                );
                out.push(Action::SignalGroup {
                    pgid: pid,
                    signal: Signal::SIGKILL,
                });
                return;
            }
        }
        self.pids.insert(pid, Owner::Service(id));
        s.starts += 1;
        s.started_wall = Some(self.clock.wall);
        s.status_text = None;
        s.last_check = None;
        info!("{}: started, pid {pid}", s.spec.name);
        let ready = match (s.spec.kind, &s.spec.ready) {
            (Kind::Oneshot { timeout, .. }, _) => Readiness::Waiting {
                deadline: timeout.map(|t| now + t),
                next_probe: None,
                check_until: None,
            },
            // A launcher is not the daemon: ready (and checked) once the
            // daemon is adopted from the pidfile.
            (Kind::Longrun, _) if s.spec.pidfile.is_some() => Readiness::Waiting {
                deadline: None,
                next_probe: None,
                check_until: None,
            },
            (Kind::Longrun, _) => daemon_readiness(&s.spec, id, s.starts, now, now, out),
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

    pub(super) fn on_spawn_failed(
        &mut self,
        id: ServiceId,
        error: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        match &s.state {
            State::Spawning => {}
            // Only a spawn in flight can fail; anything else is stale.
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Running { .. }
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited
            | State::Finishing { .. } => {
                debug!("{}: ignoring a stale spawn failure: {error}", s.spec.name);
                return;
            }
        }
        self.start_failed(id, error, now, out);
    }

    /// A start failed before the service's program ran (it could not be
    /// executed, a prepare step failed): a quick failure for the restart
    /// policy, a failed run for a oneshot.
    pub(super) fn start_failed(
        &mut self,
        id: ServiceId,
        error: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let up = self.phase == Phase::Up;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        warn!("{}: cannot start: {error}", s.spec.name);
        s.failures_total += 1;
        let reason = format!("cannot start: {error}");
        // A run that never got a process still counts, with why.
        if let Some(record) = &mut s.schedule {
            record.failed_to_start(&reason, self.clock);
        }
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
            false,
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

    pub(super) fn on_reaped(
        &mut self,
        pid: Pid,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        match self.pids.remove(&pid) {
            None => {
                self.orphans_reaped += 1;
                debug!("reaped orphan {pid} ({status})")
            }
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
            Some(Owner::Action(run)) => self.on_action_exit(run, status, now, out),
        }
    }

    pub(super) fn on_service_exit(
        &mut self,
        id: ServiceId,
        pid: Pid,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let up = self.phase == Phase::Up;
        let until = self.capped(now + FINISH_TIMEOUT);
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        s.last_exit = Some(status);
        if matches!(s.state, State::Running { .. }) && s.want_up && up && !status.succeeded(&s.spec)
        {
            s.failures_total += 1;
        }
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
        // runsv runs `finish` after every exit of `run`, before anything
        // else happens; so does corral, for a runit directory.
        let finishes = s.spec.runit.as_ref().is_some_and(|r| r.finish) && !launcher_done;
        if finishes && matches!(s.state, State::Running { .. } | State::Stopping { .. }) {
            let (code, signal) = match status {
                ExitStatus::Code(c) => (c, 0),
                ExitStatus::Signaled(sig) => (-1, sig as i32),
            };
            let after = Box::new(s.state.clone());
            set_state(
                s,
                State::Finishing {
                    pid: None,
                    until,
                    killed: false,
                    status,
                    after,
                },
                now,
            );
            out.push(Action::Finish { id, code, signal });
            return;
        }
        let prior = s.state.clone();
        self.after_exit(id, prior, status, launcher_done, now, out);
    }

    /// What follows the exit (`status`) of service `id`'s process, which
    /// was in state `prior`: the restart policy's verdict, or the stop's.
    pub(super) fn after_exit(
        &mut self,
        id: ServiceId,
        prior: State,
        status: ExitStatus,
        launcher_done: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let up = self.phase == Phase::Up;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let name = s.spec.name.clone();
        let mut oneshot_failed = None;
        let next = match prior {
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
                if status.succeeded(&s.spec) {
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
            | State::Preparing { .. }
            | State::Spawning
            | State::Adopting { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited
            | State::Finishing { .. }) => other,
        };
        set_state(s, next, now);
        if let Some(reason) = oneshot_failed {
            self.oneshot_failure(id, &reason, now, out);
        }
    }

    /// A oneshot failed: its dependents stay blocked, and a required one
    /// that failed on its boot run takes the container down.
    pub(super) fn oneshot_failure(
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
            Kind::Oneshot { .. } if s.spec.schedule.is_some() => {
                warn!("{name}: scheduled run failed ({reason})")
            }
            Kind::Oneshot { optional: true, .. } => {
                warn!("{name}: optional oneshot failed ({reason}); what requires it starts anyway")
            }
            // Its run at boot: the first process, or none at all (it
            // could not be executed, a prepare step failed) while startup
            // is still pending.
            Kind::Oneshot { .. }
                if s.spec.enabled
                    && (s.starts == 1
                        || (s.starts == 0 && matches!(self.startup, Startup::Pending { .. })))
                    && self.phase == Phase::Up =>
            {
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

    /// Time passed: every service whose state has a deadline that is due
    /// (`State::deadline`, the same function `next_deadline` uses) acts on
    /// it, then the shutdown phase and the startup report.
    pub(super) fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due: Vec<ServiceId> = self
            .services
            .iter()
            .filter(|s| s.state.deadline().is_some_and(|d| d <= now))
            .map(|s| s.id)
            .collect();
        for id in due {
            self.on_due(id, now, out);
        }
        self.on_action_deadlines(now, out);
        match self.phase {
            Phase::Stopping { deadline, forced } if deadline <= now => {
                if forced {
                    self.give_up(now, out);
                } else {
                    warn!(
                        "shutdown budget of {:?} ran out; killing what is left",
                        self.settings.shutdown_budget
                    );
                    self.force(now, out);
                }
            }
            Phase::Orphans { until, killed } if until <= now => {
                if killed {
                    warn!("processes survived SIGKILL (uninterruptible sleep?); exiting anyway");
                    self.exit(out);
                } else {
                    out.push(Action::SignalOrphans(Signal::SIGKILL));
                    self.phase = Phase::Orphans {
                        until: self.capped(now + self.settings.kill_wait),
                        killed: true,
                    };
                }
            }
            Phase::Up | Phase::Stopping { .. } | Phase::Orphans { .. } | Phase::Exiting => {}
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

    /// A deadline of service `id`'s state is due: one arm per state.
    fn on_due(&mut self, id: ServiceId, now: Instant, out: &mut Vec<Action>) {
        let up = self.phase == Phase::Up;
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let run = s.starts;
        let due = |t: &Option<Instant>| t.is_some_and(|t| t <= now);
        // What to stop the service for, once the state is looked at.
        let mut stop_for: Option<AfterStop> = None;
        match &mut s.state {
            State::Adopting { next_try, .. } => {
                // `until` is judged when the pending read answers.
                if due(next_try) {
                    *next_try = None;
                    out.push(Action::ReadPidfile { id, run });
                }
            }
            State::Backoff { .. } => {
                if s.want_up && up {
                    s.restarts += 1;
                    set_state(s, State::Starting, now);
                } else {
                    set_state(s, State::Stopped, now);
                }
            }
            State::Stopping { pid, kill_at, .. } => {
                if due(kill_at) {
                    warn!(
                        "{}: did not stop within {:?}; sending SIGKILL",
                        s.spec.name, s.spec.stop_timeout
                    );
                    signal_service(&s.spec, *pid, Signal::SIGKILL, out);
                    *kill_at = None;
                    if stopping {
                        self.unclean = true;
                    }
                }
            }
            State::Running {
                started,
                ready:
                    Readiness::Waiting {
                        deadline,
                        next_probe,
                        check_until,
                    },
                ..
            } => {
                if due(deadline) {
                    let took = now.saturating_duration_since(*started);
                    let reason = match (&s.spec.kind, &s.last_check) {
                        (Kind::Oneshot { .. }, _) => {
                            format!("timed out after {} ms", took.as_millis())
                        }
                        (Kind::Longrun, Some(why)) => format!(
                            "not ready within {} ms (last check: {why})",
                            took.as_millis()
                        ),
                        (Kind::Longrun, None) => {
                            format!("not ready within {} ms", took.as_millis())
                        }
                    };
                    warn!("{}: {reason}; stopping it", s.spec.name);
                    s.failures_total += 1;
                    stop_for = Some(AfterStop::Fail(reason));
                } else if let Some(r) = &s.spec.ready {
                    if due(check_until) {
                        // The check in flight took too long: it failed, and
                        // the next one follows after the interval.
                        out.push(Action::CancelProbe {
                            id,
                            purpose: Purpose::Ready,
                        });
                        let why =
                            format!("check timed out after {} ms", r.check_timeout.as_millis());
                        debug!("{}: not ready yet: {why}", s.spec.name);
                        s.last_check = Some(why);
                        *check_until = None;
                        *next_probe = Some(now + r.interval);
                    } else if due(next_probe) {
                        *next_probe = None;
                        *check_until = Some(now + r.check_timeout);
                        out.push(Action::Probe {
                            id,
                            run,
                            purpose: Purpose::Ready,
                        });
                    }
                }
            }
            State::Running {
                ready: Readiness::Ready { health, .. },
                ..
            } => {
                if let (Some(h), Some(spec)) = (health, &s.spec.health) {
                    if due(&h.next) {
                        h.begin(spec, now);
                        out.push(Action::Probe {
                            id,
                            run,
                            purpose: Purpose::Health,
                        });
                    } else if due(&h.in_flight_until) {
                        out.push(Action::CancelProbe {
                            id,
                            purpose: Purpose::Health,
                        });
                        let why = format!("check timed out after {} ms", spec.timeout.as_millis());
                        if h.record(spec, false, why.clone(), now) {
                            warn!("{}: unhealthy: {why}", s.spec.name);
                            s.failures_total += 1;
                            if spec.on_unhealthy == OnUnhealthy::Restart {
                                stop_for = Some(AfterStop::Start);
                            }
                        }
                    }
                }
            }
            State::Finishing {
                pid: Some(pid),
                until,
                killed,
                ..
            } if !*killed && *until <= now => {
                warn!(
                    "{}: finish still running after {} s; killing it",
                    s.spec.name,
                    FINISH_TIMEOUT.as_secs()
                );
                out.push(Action::SignalGroup {
                    pgid: *pid,
                    signal: Signal::SIGKILL,
                });
                *killed = true;
            }
            // Not started yet, or killed: its report moves it on.
            State::Finishing { .. } => {}
            // No deadline in these states.
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Failed { .. }
            | State::Exited => {}
        }
        if let Some(then) = stop_for {
            cancel_probes(id, &s.spec, out);
            self.begin_stop(id, then, now, out);
        }
    }

    /// Sends the stop signal; SIGKILL follows after stop_timeout.
    pub(super) fn begin_stop(
        &mut self,
        id: ServiceId,
        then: AfterStop,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
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
}

/// Signals a service's process group; an adopted daemon (pidfile) may not
/// lead a group of its own, so it gets the signal directly as well.
pub(super) fn signal_service(spec: &ServiceSpec, pid: Pid, signal: Signal, out: &mut Vec<Action>) {
    out.push(Action::SignalGroup { pgid: pid, signal });
    if spec.pidfile.is_some() {
        out.push(Action::Signal { pid, signal });
    }
}

/// Drops the checks a service may have in flight.
pub(super) fn cancel_probes(id: ServiceId, spec: &ServiceSpec, out: &mut Vec<Action>) {
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
