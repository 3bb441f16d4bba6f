//! The `Preparing` state: a service's `[[prepare]]` steps run in a helper
//! before its program is spawned. A failed step fails the start like a
//! program that cannot run; a stop kills the helper (see `reconcile`).

use super::*;

impl Supervisor {
    pub(super) fn on_prepare_spawned(&mut self, id: ServiceId, pid: Pid, out: &mut Vec<Action>) {
        let Some(s) = self.services.get_mut(id) else {
            // Its service is gone: the steps are not wanted.
            out.push(kill(pid));
            return;
        };
        match s.state {
            State::Preparing { pid: None, .. } => {
                // A stop that came meanwhile: reconcile kills it now.
                s.state = State::Preparing {
                    pid: Some(pid),
                    killed: false,
                };
                debug!("{}: prepare steps running, pid {pid}", s.spec.name);
            }
            State::Preparing { pid: Some(_), .. }
            | State::Stopped
            | State::Starting
            | State::Spawning
            | State::Running { .. }
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited
            | State::Finishing { .. } => {
                warn!(
                    "{}: unexpected prepare helper {pid}; killing it",
                    s.spec.name
                );
                out.push(kill(pid));
            }
        }
    }

    /// The helper of service `id` ended (or, with `pid` None, never ran).
    pub(super) fn on_prepare_failed(
        &mut self,
        id: ServiceId,
        pid: Option<Pid>,
        reason: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        match s.state {
            State::Preparing { pid: p, .. } if p == pid => {}
            _ => return,
        }
        if s.want_up {
            // Counted as a start failure: backoff, budget, oneshot rules.
            s.state = State::Spawning;
            self.start_failed(id, reason, now, out);
        } else {
            set_state(s, State::Stopped, now);
        }
    }

    pub(super) fn on_prepare_done(
        &mut self,
        id: ServiceId,
        pid: Pid,
        ok: bool,
        reason: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let State::Preparing { pid: Some(p), .. } = s.state else {
            return;
        };
        if p != pid {
            return;
        }
        match (s.want_up, ok) {
            (true, true) => {
                set_state(s, State::Spawning, now);
                out.push(Action::Spawn(id));
            }
            (true, false) => self.on_prepare_failed(id, Some(pid), reason, now, out),
            (false, _) => set_state(s, State::Stopped, now),
        }
    }
}

fn kill(pid: Pid) -> Action {
    Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGKILL,
    }
}
