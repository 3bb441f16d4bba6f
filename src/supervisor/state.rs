//! The state of one supervised service. Each variant carries exactly the
//! data that is valid in it (a pid only while a process exists, a deadline
//! only while one is pending), so impossible combinations cannot be built.

use std::time::Instant;

use super::event::{ExitStatus, Pid};
use super::health::HealthCheck;

/// Where a service is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running and not wanted (disabled, stopped by request, shut down).
    Stopped,
    /// Wanted up, waiting for the services it requires to be running.
    Starting,
    /// Its `[[prepare]]` steps run in a helper (`pid`, once started)
    /// before the spawn; `killed` once a stop sent the helper SIGKILL.
    /// Shown as `starting`.
    Preparing { pid: Option<Pid>, killed: bool },
    /// `Action::Spawn` issued; the runtime's answer is pending. Shown as
    /// `starting`. Guards against spawning twice.
    Spawning,
    /// The process runs; dependents wait until it is ready (a oneshot is
    /// never ready: it is done when it exits 0).
    Running {
        pid: Pid,
        started: Instant,
        ready: Readiness,
    },
    /// The launcher of a daemonizing service exited 0; corral reads its
    /// `pidfile` (again at `next_try`, `None` while a read is pending)
    /// until `until`, to supervise the daemon. Shown as `starting`.
    Adopting {
        started: Instant,
        until: Instant,
        next_try: Option<Instant>,
    },
    /// The stop signal was sent; SIGKILL follows at `kill_at` (`None` once
    /// SIGKILL was sent). `then` says what follows the exit.
    Stopping {
        pid: Pid,
        kill_at: Option<Instant>,
        then: AfterStop,
    },
    /// Exited on its own; restarts at `until`.
    Backoff { until: Instant },
    /// Gave up (crash-loop budget spent, or could not be executed); stays
    /// down until `svctl start`.
    Failed { reason: String },
    /// Exited and the restart policy keeps it down.
    Exited,
    /// The process ended (`status`) and its runit `finish` runs in a
    /// helper (`pid`, once started) until it ends or `until` (then it is
    /// killed once, `killed`); what follows is decided then, as if the
    /// process had ended from `after` (Running or Stopping).
    Finishing {
        pid: Option<Pid>,
        until: Instant,
        killed: bool,
        status: ExitStatus,
        after: Box<State>,
    },
}

/// Whether a running service is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready since `at`; health checks run while ready.
    Ready {
        at: Instant,
        health: Option<HealthCheck>,
    },
    /// Not yet. At `deadline` the start has failed (a oneshot's `timeout`,
    /// a longrun's `[ready] timeout`); at `next_probe` corral polls again
    /// (`None`: a probe is in flight, or the service tells corral itself);
    /// at `check_until` the probe in flight has failed
    /// (`[ready] check_timeout`).
    Waiting {
        deadline: Option<Instant>,
        next_probe: Option<Instant>,
        check_until: Option<Instant>,
    },
}

/// What follows once a stopping process has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay down (stop request, shutdown).
    Down,
    /// Start again (restart request, start during stop).
    Start,
    /// The start failed (not ready in time, oneshot timeout): treat it as
    /// a failed exit with this reason.
    Fail(String),
}

impl State {
    /// The lowercase word status shows.
    pub fn word(&self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Adopting { .. } => "starting",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Backoff { .. } => "backoff",
            State::Failed { .. } => "failed",
            State::Exited => "exited",
            State::Finishing { .. } => "finishing",
        }
    }

    /// The earliest time at which a tick has something to do in this
    /// state: the one place timed states are listed, used both to compute
    /// the event loop's timeout and to find what is due on a tick.
    pub fn deadline(&self) -> Option<Instant> {
        let earliest = |a: Option<Instant>, b: Option<Instant>| a.into_iter().chain(b).min();
        match self {
            State::Backoff { until } => Some(*until),
            // `until` is judged when a pidfile read answers; only the
            // next read is timed.
            State::Adopting { next_try, .. } => *next_try,
            State::Stopping { kill_at, .. } => *kill_at,
            // Timed once the helper runs, until it is killed.
            State::Finishing {
                pid: Some(_),
                until,
                killed: false,
                ..
            } => Some(*until),
            State::Finishing { .. } => None,
            State::Running {
                ready:
                    Readiness::Waiting {
                        deadline,
                        next_probe,
                        check_until,
                    },
                ..
            } => earliest(earliest(*deadline, *next_probe), *check_until),
            State::Running {
                ready: Readiness::Ready { health, .. },
                ..
            } => health.as_ref().and_then(HealthCheck::deadline),
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Spawning
            | State::Failed { .. }
            | State::Exited => None,
        }
    }

    /// The process id while a process exists.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(*pid),
            // The prepare and finish helpers are not the service's process.
            State::Stopped
            | State::Starting
            | State::Preparing { .. }
            | State::Finishing { .. }
            | State::Spawning
            | State::Adopting { .. }
            | State::Backoff { .. }
            | State::Failed { .. }
            | State::Exited => None,
        }
    }

    /// A process exists or is being created: dependents must wait for it to
    /// be gone before it counts as down.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            State::Preparing { .. }
                | State::Spawning
                | State::Adopting { .. }
                | State::Running { .. }
                | State::Stopping { .. }
                | State::Finishing { .. }
        )
    }

    /// Down, and nothing will bring it up without a request.
    pub fn is_dead_end(&self) -> bool {
        matches!(self, State::Stopped | State::Failed { .. } | State::Exited)
    }
}
