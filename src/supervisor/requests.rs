//! What is asked of the supervisor: signals, svctl start/stop/restart,
//! shutdown with its forced variant, and the start of the main command.

use super::lifecycle::signal_service;
use super::*;

impl Supervisor {
    pub(super) fn on_signal(&mut self, signal: Signal, now: Instant, out: &mut Vec<Action>) {
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

    /// What a start of `ids` brings up: each, what it requires, and what a
    /// stop of one of them took down.
    pub fn start_set(&self, ids: &[ServiceId]) -> Vec<ServiceId> {
        let mut set: Vec<ServiceId> = Vec::new();
        for &id in ids {
            for r in self
                .graph
                .requirements_closure(id)
                .into_iter()
                .chain(self.brought_back(id))
            {
                if !set.contains(&r) {
                    set.push(r);
                }
            }
        }
        set
    }

    /// What a stop of `ids` takes down: each and what requires it.
    pub fn stop_set(&self, ids: &[ServiceId]) -> Vec<ServiceId> {
        let mut set: Vec<ServiceId> = Vec::new();
        for &id in ids {
            for d in self.graph.dependents_closure(id) {
                if !set.contains(&d) {
                    set.push(d);
                }
            }
        }
        set
    }

    /// The services a stop of `id` took down (and that are still down).
    fn brought_back(&self, id: ServiceId) -> Vec<ServiceId> {
        self.services
            .iter()
            .filter(|s| s.taken_down_by == Some(id) && !s.want_up)
            .map(|s| s.id)
            .collect()
    }

    pub(super) fn request_start(&mut self, id: ServiceId, now: Instant) {
        for d in self.brought_back(id) {
            if let Some(s) = self.services.get_mut(d) {
                s.taken_down_by = None;
            }
            self.request_start_one(d, now);
        }
        self.request_start_one(id, now);
    }

    /// Starts `id` and what it requires.
    fn request_start_one(&mut self, id: ServiceId, now: Instant) {
        if let Some(s) = self.services.get_mut(id) {
            s.taken_down_by = None;
        }
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
                // What follows finish is decided as if the process had
                // just ended: a stop it ended from now starts again.
                State::Finishing { after, .. } => {
                    if let State::Stopping { then, .. } = after.as_mut() {
                        *then = AfterStop::Start;
                    }
                }
                State::Starting
                | State::Preparing { .. }
                | State::Spawning
                | State::Adopting { .. }
                | State::Running { .. } => {}
            }
        }
    }

    pub(super) fn request_stop(&mut self, id: ServiceId) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        s.want_up = false;
        if let State::Stopping { then, .. } = &mut s.state {
            *then = AfterStop::Down;
        }
    }

    pub(super) fn request_restart(&mut self, id: ServiceId, now: Instant, out: &mut Vec<Action>) {
        self.request_start(id, now);
        if let Some(State::Running { .. }) = self.services.get(id).map(|s| &s.state) {
            self.begin_stop(id, AfterStop::Start, now, out);
        }
    }

    pub(super) fn request_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Up => self.begin_shutdown(now, out),
            Phase::Stopping { forced: false, .. } => {
                warn!("second stop request: killing everything now");
                self.force(now, out);
            }
            Phase::Orphans { killed: false, .. } => {
                out.push(Action::SignalOrphans(Signal::SIGKILL));
                self.phase = Phase::Orphans {
                    until: self.capped(now + self.settings.kill_wait),
                    killed: true,
                };
            }
            Phase::Stopping { forced: true, .. }
            | Phase::Orphans { killed: true, .. }
            | Phase::Exiting => {}
        }
    }

    pub(super) fn begin_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        info!("shutting down");
        out.push(Action::Announce("STOPPING=1\nSTATUS=shutting down".into()));
        let services_budget = self
            .settings
            .shutdown_budget
            .saturating_sub(self.settings.orphan_grace);
        self.phase = Phase::Stopping {
            deadline: now + services_budget,
            forced: false,
        };
        self.exit_by = Some(now + self.settings.shutdown_budget);
        self.end_actions((now + KILL_AFTER).min(now + services_budget), out);
        self.startup = Startup::Done;
        for s in self.services.iter_mut() {
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

    /// Kills everything still running at once, ignoring order. What has
    /// not been reaped `kill_wait` later (or at the end of the budget) is
    /// given up on: see `give_up`.
    pub(super) fn force(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.unclean = true;
        self.phase = Phase::Stopping {
            deadline: self.capped(now + self.settings.kill_wait),
            forced: true,
        };
        if let Main::Running { pid } = self.main {
            out.push(Action::Signal {
                pid,
                signal: Signal::SIGKILL,
            });
        }
        self.kill_actions(out);
        for s in self.services.iter_mut() {
            s.want_up = false;
            if let State::Finishing {
                pid: Some(pid),
                killed,
                ..
            } = &mut s.state
                && !*killed
            {
                out.push(Action::SignalGroup {
                    pgid: *pid,
                    signal: Signal::SIGKILL,
                });
                *killed = true;
            }
            if let Some(pid) = s.state.pid() {
                signal_service(&s.spec, pid, Signal::SIGKILL, out);
                set_state(
                    s,
                    State::Stopping {
                        pid,
                        kill_at: None,
                        then: AfterStop::Down,
                    },
                    now,
                );
            }
        }
    }

    /// Logs the startup summary once everything settled, and starts the
    /// main command then (or once `start_timeout` ran out).
    pub(super) fn check_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Startup::Pending { since, .. } = self.startup else {
            self.start_main(out);
            return;
        };
        let took = now.saturating_duration_since(since).as_millis();
        if self.services.iter().all(|s| self.settled(s.id)) {
            self.startup = Startup::Done;
            let counted = |s: &&Service| s.spec.enabled && s.spec.schedule.is_none();
            let enabled: Vec<&Service> = self.services.iter().filter(counted).collect();
            let troubled: Vec<String> = self
                .status(&[], now)
                .into_iter()
                .filter(|st| st.enabled && !st.ready && st.schedule.is_none())
                .map(|st| format!("{} {}", st.name, st.state))
                .collect();
            let summary = if enabled.is_empty() {
                "no services to start".to_string()
            } else if troubled.is_empty() {
                format!("all {} services ready in {took} ms", enabled.len())
            } else {
                format!(
                    "startup finished in {took} ms; {} of {} services not ready: {}",
                    troubled.len(),
                    enabled.len(),
                    troubled.join(", ")
                )
            };
            if troubled.is_empty() && !enabled.is_empty() {
                info!("{summary}");
            } else if !troubled.is_empty() {
                warn!("{summary}");
            }
            out.push(Action::Announce(format!("READY=1\nSTATUS={summary}")));
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

    pub(super) fn start_main(&mut self, out: &mut Vec<Action>) {
        if self.main == Main::Pending {
            self.main = Main::Spawning;
            out.push(Action::SpawnMain);
        }
    }

    /// SIGKILL was sent and the time is up, yet processes were not reaped
    /// (uninterruptible sleep, a frozen cgroup): name them, sweep once more
    /// and exit. A bounded shutdown matters more than waiting for them;
    /// as PID 1, our exit takes the namespace down with them.
    pub(super) fn give_up(&mut self, now: Instant, out: &mut Vec<Action>) {
        let stuck: Vec<String> = self
            .services
            .iter()
            .filter_map(|s| Some(format!("{} (pid {})", s.spec.name, s.state.pid()?)))
            .chain(match self.main {
                Main::Running { pid } => Some(format!("the main command (pid {pid})")),
                _ => None,
            })
            .chain(
                self.runs
                    .iter()
                    .filter_map(|r| Some(format!("{} (pid {})", r.label, r.step.pid()?))),
            )
            .collect();
        warn!(
            "shutdown budget spent; not reaped after SIGKILL: {}; exiting anyway",
            stuck.join(", ")
        );
        for s in self.services.iter_mut() {
            if s.state.pid().is_some() {
                set_state(s, State::Stopped, now);
            }
        }
        self.unclean = true;
        out.push(Action::SignalOrphans(Signal::SIGKILL));
        self.exit(out);
    }
}
