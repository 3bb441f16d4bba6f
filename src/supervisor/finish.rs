//! The `Finishing` state: a runit directory's `finish` runs in a helper
//! after each exit of `run`, and only once it ended (or could not start,
//! or was killed at its time limit) does the restart policy, or the stop
//! that was under way, decide what follows (`after_exit`).

use super::*;

impl Supervisor {
    pub(super) fn on_finish_spawned(&mut self, id: ServiceId, pid: Pid, out: &mut Vec<Action>) {
        let kill = Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL,
        };
        let Some(s) = self.services.get_mut(id) else {
            out.push(kill);
            return;
        };
        match &mut s.state {
            State::Finishing { pid: p @ None, .. } => {
                debug!("{}: finish running, pid {pid}", s.spec.name);
                *p = Some(pid);
            }
            State::Finishing { pid: Some(_), .. }
            | State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Running { .. }
            | State::Adopting { .. }
            | State::Stopping { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited => {
                warn!(
                    "{}: unexpected finish helper {pid}; killing it",
                    s.spec.name
                );
                out.push(kill);
            }
        }
    }

    /// Service `id`'s finish ended (`pid`), or could not start (`error`):
    /// on to what its process's exit leads to.
    pub(super) fn on_finish_ended(
        &mut self,
        id: ServiceId,
        pid: Option<Pid>,
        error: Option<&str>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let State::Finishing {
            pid: running,
            status,
            after,
            ..
        } = &s.state
        else {
            return;
        };
        // Only the helper of this finish ends it; a spawn failure only
        // while none runs.
        if *running != pid {
            return;
        }
        if let Some(e) = error {
            warn!("{}: cannot run finish: {e}", s.spec.name);
        }
        let (status, prior) = (*status, (**after).clone());
        self.after_exit(id, prior, status, false, now, out);
    }
}
