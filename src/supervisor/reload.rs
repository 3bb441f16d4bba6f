//! Reload: the plan that takes the running services to a new validated
//! configuration, and carrying it out. Pure like the rest of the
//! supervisor: the runtime reads and validates the directory, this module
//! compares two models.
//!
//! What a change means:
//! - a service that is new is added (and started if enabled);
//! - one that is gone stops (what requires it first: until it is gone its
//!   old edges stay) and leaves the roster;
//! - a change to what the process is (command, user, environment,
//!   directory, pidfile, type, readiness method, `no_new_privs`, an
//!   `inherit` log format) restarts it with the new definition; a change
//!   to how corral treats it (requires, restart policy and backoff, stop
//!   signal and timeout, health checks, the rest of `[log]`) applies in
//!   place, process kept;
//! - `enabled` turning false stops it, turning true starts it;
//! - everything else keeps its process, pid, ring, counters and health.
//!
//! A restarted service's dependents keep running: they were started
//! against a service of that name, and restarting them too would turn
//! one change into many outages; a dependent that must restart with it
//! changes too, or is restarted by hand.

use super::*;
use crate::logs::Format;

/// What a reload does to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
    /// What the process is changed and it runs: stopped and started anew.
    Restart(Vec<&'static str>),
    /// Applied in place: these keys, the process (if any) kept.
    Update(Vec<&'static str>),
    /// `enabled` turned true or false (other keys may change with it).
    Enable,
    Disable,
    Unchanged,
}

/// The plan of a reload: one change per service, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadPlan {
    pub changes: Vec<(String, Change)>,
}

impl ReloadPlan {
    /// What `svctl reload` prints: a line per change, then the count of
    /// what stays as it is.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .changes
            .iter()
            .filter_map(|(name, c)| match c {
                Change::Add => Some(format!("add {name}")),
                Change::Remove => Some(format!("remove {name}")),
                Change::Restart(keys) => {
                    Some(format!("restart {name} ({} changed)", keys.join(", ")))
                }
                Change::Update(keys) => Some(format!("update {name} ({})", keys.join(", "))),
                Change::Enable => Some(format!("start {name} (enabled)")),
                Change::Disable => Some(format!("stop {name} (disabled)")),
                Change::Unchanged => None,
            })
            .collect();
        let unchanged = self
            .changes
            .iter()
            .filter(|(_, c)| *c == Change::Unchanged)
            .count();
        lines.push(format!("{unchanged} unchanged"));
        lines
    }

    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|(_, c)| *c == Change::Unchanged)
    }
}

/// The keys that differ between two definitions of one service: those that
/// need a new process, and those corral applies in place.
pub fn differences(old: &ServiceSpec, new: &ServiceSpec) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut restart = Vec::new();
    let mut in_place = Vec::new();
    // Where a key was written (its line) is not part of what it means.
    let who = |s: &ServiceSpec| {
        s.credentials
            .as_ref()
            .map(|c| (c.uid, c.gid, c.groups.clone(), c.home.clone()))
    };
    let names = |s: &ServiceSpec| {
        s.requires
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let inherit = |s: &ServiceSpec| s.log.format == Some(Format::Inherit);
    for (key, differs) in [
        ("command", old.argv != new.argv),
        ("user", who(old) != who(new)),
        ("env", old.env != new.env || old.env_unset != new.env_unset),
        (
            "env_file",
            old.env_files != new.env_files || old.env_from_files != new.env_from_files,
        ),
        ("working_dir", old.working_dir != new.working_dir),
        ("pidfile", old.pidfile != new.pidfile),
        ("type", old.kind != new.kind),
        ("ready", old.ready != new.ready),
        ("no_new_privs", old.no_new_privs != new.no_new_privs),
        ("log/run", old.log_pipe != new.log_pipe),
        ("log.format", inherit(old) != inherit(new)),
    ] {
        if differs {
            restart.push(key);
        }
    }
    for (key, differs) in [
        ("requires", names(old) != names(new)),
        (
            "restart",
            old.restart != new.restart
                || old.backoff != new.backoff
                || old.success_exit_codes != new.success_exit_codes,
        ),
        ("stop_signal", old.stop_signal != new.stop_signal),
        ("stop_timeout", old.stop_timeout != new.stop_timeout),
        ("health", old.health != new.health),
        ("log", old.log != new.log && inherit(old) == inherit(new)),
        ("schedule", old.schedule != new.schedule),
        ("actions", old.actions != new.actions),
        // The next start runs the new steps.
        ("prepare", old.prepare != new.prepare),
    ] {
        if differs {
            in_place.push(key);
        }
    }
    (restart, in_place)
}

impl Supervisor {
    /// What loading `config` would do, changing nothing.
    pub fn plan_reload(&self, config: &Config) -> ReloadPlan {
        let mut changes: Vec<(String, Change)> = config
            .services
            .iter()
            .map(|new| {
                let change = match self
                    .services
                    .lookup(&new.name)
                    .and_then(|id| self.services.get(id))
                {
                    None => Change::Add,
                    Some(old) => self.change_of(old, new),
                };
                (new.name.clone(), change)
            })
            .collect();
        for s in self.services.iter() {
            if !config.services.iter().any(|n| n.name == s.spec.name) {
                changes.push((s.spec.name.clone(), Change::Remove));
            }
        }
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        ReloadPlan { changes }
    }

    fn change_of(&self, old: &Service, new: &ServiceSpec) -> Change {
        let (restart, in_place) = differences(&old.spec, new);
        match (old.spec.enabled, new.enabled) {
            (true, false) => return Change::Disable,
            (false, true) => return Change::Enable,
            (true, true) | (false, false) => {}
        }
        // A process that is wanted: a service being stopped (by svctl
        // stop) or waiting in backoff takes the new definition at its next
        // start instead.
        let running = old.state.is_active() && old.want_up;
        match (restart.is_empty(), in_place.is_empty()) {
            (true, true) => Change::Unchanged,
            (false, _) if running => Change::Restart(restart),
            (restart_empty, _) => {
                // Nothing runs: every key, even one that needs a new
                // process, just applies to the next start.
                let mut keys = if restart_empty { Vec::new() } else { restart };
                keys.extend(in_place);
                Change::Update(keys)
            }
        }
    }

    /// Whether a reload would now be refused, and why. Not during startup:
    /// a service that never gets ready at boot is exactly what a reload
    /// must be able to fix; a reload is applied in one step, so it cannot
    /// interleave with anything.
    pub fn reload_refusal(&self) -> Option<&'static str> {
        if self.phase != Phase::Up {
            return Some("corral is shutting down");
        }
        if self
            .services
            .iter()
            .any(|s| s.removing || s.next_spec.is_some())
        {
            return Some(
                "the last reload is still being applied (a service is still stopping); try again",
            );
        }
        None
    }

    /// Takes the services to `config` (validated, and not refused by
    /// `reload_refusal`); returns the plan and what `svctl reload` waits
    /// for: every service added, restarted or started (up) and every one
    /// removed or stopped (down).
    pub fn reload(
        &mut self,
        config: Config,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> (ReloadPlan, Vec<(ServiceId, Goal)>) {
        let plan = self.plan_reload(&config);
        let mut goals = Vec::new();
        let Config {
            services: specs,
            graph,
            ..
        } = config;
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.clone();
            let change = plan
                .changes
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Change::Unchanged, |(_, c)| c.clone());
            let existing = self.services.lookup(&name);
            let id = match (existing, change) {
                (None, _) | (_, Change::Add) => {
                    let enabled = spec.enabled;
                    let id = self
                        .services
                        .insert(Service::new(spec, now, self.settings.seed));
                    out.push(Action::Register(id));
                    info!("{name}: added by reload");
                    if enabled && let Some(s) = self.services.get_mut(id) {
                        s.want_up = true;
                        set_state(s, State::Starting, now);
                        goals.push((id, Goal::Up { starts_before: 0 }));
                    }
                    id
                }
                (Some(id), change) => {
                    self.apply_change(id, spec, &change, now, out, &mut goals);
                    id
                }
            };
            ids.push(id);
        }
        for (name, change) in &plan.changes {
            if *change == Change::Remove
                && let Some(id) = self.services.lookup(name)
                && let Some(s) = self.services.get_mut(id)
            {
                info!("{name}: removed by reload; stopping it");
                s.removing = true;
                s.want_up = false;
                if let State::Stopping { then, .. } = &mut s.state {
                    *then = AfterStop::Down;
                }
                goals.push((id, Goal::Gone));
            }
        }
        // New edges for what stays; a service on its way out keeps its
        // old ones until it is gone, so what requires it stops first.
        let mut deps = Deps::new(&graph, &ids);
        for s in self.services.iter().filter(|s| s.removing) {
            deps.keep_edges_of(s.id, &self.graph);
        }
        self.graph = deps;
        self.reconcile(now, out);
        (plan, goals)
    }

    fn apply_change(
        &mut self,
        id: ServiceId,
        spec: ServiceSpec,
        change: &Change,
        now: Instant,
        out: &mut Vec<Action>,
        goals: &mut Vec<(ServiceId, Goal)>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        match change {
            Change::Unchanged => {
                // Same meaning; the new text keeps error lines right.
                *s.spec = spec;
            }
            Change::Restart(keys) => {
                info!(
                    "{}: restarting for the reload ({} changed)",
                    s.spec.name,
                    keys.join(", ")
                );
                s.next_spec = Some(Box::new(spec));
                goals.push((
                    id,
                    Goal::Up {
                        starts_before: s.starts,
                    },
                ));
            }
            Change::Update(keys) => {
                info!(
                    "{}: updated in place by reload ({})",
                    s.spec.name,
                    keys.join(", ")
                );
                let health_changed = s.spec.health != spec.health;
                let schedule_changed = s.spec.schedule != spec.schedule;
                *s.spec = spec;
                if health_changed {
                    restart_health(s, now);
                }
                if schedule_changed {
                    super::schedule::refresh(s, self.settings.seed);
                }
                out.push(Action::Reconfigure(id));
            }
            Change::Enable => {
                *s.spec = spec;
                out.push(Action::Reconfigure(id));
                // Up counts with the process it may have already (started
                // by hand while disabled).
                goals.push((id, Goal::Up { starts_before: 0 }));
                self.request_start(id, now);
            }
            Change::Disable => {
                // Applied once it is down, like a restart's new definition.
                s.next_spec = Some(Box::new(spec));
                goals.push((id, Goal::Down));
                for d in self.graph.dependents_closure(id) {
                    self.request_stop(d);
                }
            }
            Change::Add | Change::Remove => {}
        }
    }

    /// Carries pending reload work forward (from `reconcile`): a service
    /// with a new definition is stopped if it runs and given the new
    /// definition once it has no process; a removed one leaves the roster
    /// once it has none.
    pub(super) fn settle_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        enum Step {
            Stop,
            Remove,
            Swap,
        }
        // Runs after every event: only a reload leaves services to settle,
        // so the common case looks at each service once and allocates
        // nothing.
        let unsettled: Vec<ServiceId> = self
            .services
            .iter()
            .filter(|s| s.removing || s.next_spec.is_some())
            .map(|s| s.id)
            .collect();
        for id in unsettled {
            let Some(s) = self.services.get(id) else {
                continue;
            };
            let step = match (&s.state, s.removing, s.next_spec.is_some()) {
                (State::Running { .. }, false, true) if s.want_up => Step::Stop,
                (_, false, false) => continue,
                (state, _, _) if state.is_active() => continue,
                // An action's output is relayed as its service's: a
                // removed service stays until its actions are over.
                (_, true, _) if self.runs.running(id, None) => continue,
                (_, true, _) => Step::Remove,
                (_, false, true) => Step::Swap,
            };
            match step {
                Step::Stop => self.begin_stop(id, AfterStop::Start, now, out),
                Step::Remove => {
                    if let Some(gone) = self.services.remove(id) {
                        info!("{}: removed", gone.spec.name);
                    }
                    self.graph.forget(id);
                    out.push(Action::Unregister(id));
                }
                Step::Swap => {
                    if let Some(s) = self.services.get_mut(id)
                        && let Some(next) = s.next_spec.take()
                    {
                        let schedule_changed = s.spec.schedule != next.schedule;
                        s.spec = next;
                        if schedule_changed {
                            super::schedule::refresh(s, self.settings.seed);
                        }
                        out.push(Action::Reconfigure(id));
                    }
                }
            }
        }
    }
}

/// The health check starts over with the new `[health]` (or stops).
fn restart_health(s: &mut Service, now: Instant) {
    if let State::Running {
        started,
        ready: Readiness::Ready { health, .. },
        ..
    } = &mut s.state
    {
        *health = s
            .spec
            .health
            .as_ref()
            .map(|h| HealthCheck::new(h, *started, now));
    }
}
