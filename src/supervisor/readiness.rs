//! Services telling or showing that they are ready: probe results,
//! notify messages and the readiness fd, and daemons adopted from their
//! pidfile.

use super::policy::after_failure;
use super::*;

impl Supervisor {
    pub(super) fn on_probe_done(
        &mut self,
        result: ProbeResult,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
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
                    ready:
                        Readiness::Waiting {
                            next_probe,
                            check_until,
                            ..
                        },
                    ..
                },
            ) => {
                if ok {
                    mark_ready(s, now);
                } else if let Some(r) = &s.spec.ready {
                    debug!("{}: not ready yet: {output}", s.spec.name);
                    *next_probe = Some(now + r.interval);
                    *check_until = None;
                    s.last_check = Some(output);
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
                    s.failures_total += 1;
                    warn!(
                        "{}: unhealthy after {} failed checks: {output}",
                        s.spec.name, h.failures
                    );
                    restart = spec.on_unhealthy == OnUnhealthy::Restart;
                } else if was == HealthStatus::Unhealthy && h.status == HealthStatus::Healthy {
                    info!("{}: healthy again", s.spec.name);
                }
            }
            // A result that no longer applies: the service became ready
            // (or stopped being so) while the check ran, or has no
            // process any more. Spelled out so a new state must be placed.
            (
                Purpose::Ready,
                State::Running {
                    ready: Readiness::Ready { .. },
                    ..
                },
            )
            | (
                Purpose::Health,
                State::Running {
                    ready: Readiness::Waiting { .. } | Readiness::Ready { health: None, .. },
                    ..
                },
            )
            | (
                Purpose::Ready | Purpose::Health,
                State::Stopped
                | State::Starting
                | State::Preparing { .. }
                | State::Spawning
                | State::Adopting { .. }
                | State::Stopping { .. }
                | State::Backoff { .. }
                | State::Failed { .. }
                | State::Exited
                | State::Finishing { .. },
            ) => {}
        }
        if restart {
            info!("{}: restarting (on_unhealthy = \"restart\")", s.spec.name);
            self.begin_stop(id, AfterStop::Start, now, out);
        }
    }

    pub(super) fn on_adopted(
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
        if let Some(owner) = self.pids.get(&pid) {
            // Another service's process (or this one's launcher pid
            // reused): adopting it would let `svctl stop` of this service
            // kill it, and leave two owners for one exit.
            let whose = match owner {
                Owner::Service(other) => self
                    .services
                    .get(*other)
                    .map_or("another service".to_string(), |o| {
                        format!("service {}", o.spec.name)
                    }),
                Owner::Main => "the main command".to_string(),
                Owner::Action(_) => "an action's command".to_string(),
            };
            let reason = format!("pid {pid} is already supervised as {whose}");
            self.on_adopt_failed(id, run, &reason, now);
            return;
        }
        info!("{}: supervising pid {pid} from its pidfile", s.spec.name);
        self.pids.insert(pid, Owner::Service(id));
        let ready = daemon_readiness(&s.spec, id, run, started, now, out);
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

    pub(super) fn on_adopt_failed(&mut self, id: ServiceId, run: u64, reason: &str, now: Instant) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        if s.starts != run {
            return;
        }
        if let State::Adopting { started, until, .. } = s.state {
            if now < until && s.want_up {
                debug!("{}: pidfile not usable yet: {reason}", s.spec.name);
                // The same state with a new timer: not a state change.
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
                s.failures_total += 1;
                let next = after_failure(s, None, Duration::ZERO, Some(why), now);
                set_state(s, next, now);
            }
        }
    }

    pub(super) fn on_notified(&mut self, id: ServiceId, run: u64, message: Notice, now: Instant) {
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
}

/// The readiness of a daemon process from the moment it is known (spawned,
/// or adopted from its pidfile): ready at once without `[ready]`, else
/// waiting until its timeout, with the first poll sent now.
pub(super) fn daemon_readiness(
    spec: &ServiceSpec,
    id: ServiceId,
    run: u64,
    started: Instant,
    now: Instant,
    out: &mut Vec<Action>,
) -> Readiness {
    match &spec.ready {
        None => Readiness::Ready {
            at: now,
            health: spec
                .health
                .as_ref()
                .map(|h| HealthCheck::new(h, started, now)),
        },
        Some(r) => {
            let mut check_until = None;
            if let ReadyMethod::Poll(_) = r.method {
                out.push(Action::Probe {
                    id,
                    run,
                    purpose: Purpose::Ready,
                });
                check_until = Some(now + r.check_timeout);
            }
            Readiness::Waiting {
                deadline: Some(now + r.timeout),
                next_probe: None,
                check_until,
            }
        }
    }
}

/// Waiting -> Ready, with health checks from now on.
pub(super) fn mark_ready(s: &mut Service, now: Instant) {
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
        set_state(
            s,
            State::Running {
                pid,
                started,
                ready: Readiness::Ready { at: now, health },
            },
            now,
        );
    }
}
