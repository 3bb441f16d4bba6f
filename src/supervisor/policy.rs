//! Restart decisions and backoff arithmetic. Pure functions of the service's
//! settings and history, so the numbers in the README are checked by unit
//! tests; `after_failure` applies a verdict to a service (lifecycle and
//! readiness both use it, so it lives here, below both).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{Backoff, RestartPolicy};

use super::event::ExitStatus;
use super::{Service, State};

/// What to do after a process exited on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Start again after this delay.
    Restart(Duration),
    /// Stay down: the policy does not restart this exit.
    Stay,
    /// Too many quick failures in a row: give up until `svctl start`.
    GiveUp,
}

/// Decides what follows an exit and returns the new count of quick failures
/// in a row. A run that lasted `reset_after` or longer starts the count
/// afresh; `succeeded`: the exit counts as success (`success_exit_codes`;
/// never so for a process that did not run or died by a signal).
pub fn after_exit(
    policy: RestartPolicy,
    backoff: &Backoff,
    succeeded: bool,
    ran_for: Duration,
    failures: u32,
) -> (Verdict, u32) {
    let wants_restart = match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !succeeded,
        RestartPolicy::Never => false,
    };
    if !wants_restart {
        return (Verdict::Stay, 0);
    }
    let failures = if ran_for >= backoff.reset_after {
        1
    } else {
        failures.saturating_add(1)
    };
    if backoff.limit.is_some_and(|limit| failures > limit) {
        return (Verdict::GiveUp, failures);
    }
    (Verdict::Restart(delay(backoff, failures)), failures)
}

/// The delay before restart number `failures` (1-based): `initial` doubled
/// for each earlier quick failure, capped at `max`.
pub fn delay(backoff: &Backoff, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    backoff
        .initial
        .checked_mul(1u32 << doublings.min(31))
        .map_or(backoff.max, |d| d.min(backoff.max))
}

/// The state after a longrun failed on its own (`status` from its exit)
/// or did not become ready (`reason`), by its restart policy.
pub(super) fn after_failure(
    s: &mut Service,
    status: Option<ExitStatus>,
    ran_for: Duration,
    reason: Option<String>,
    now: Instant,
) -> State {
    let succeeded = status.is_some_and(|st| st.succeeded(&s.spec));
    let (verdict, failures) = after_exit(
        s.spec.restart,
        &s.spec.backoff,
        succeeded,
        ran_for,
        s.failures,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_backoff_doubles_from_100ms_to_30s() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=12).map(|f| delay(&b, f).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(delay(&b, u32::MAX), b.max);
    }

    #[test]
    fn policies_decide_which_exits_restart() {
        let b = Backoff::default();
        // Whether an exit code counts is the spec's (success_exit_codes):
        // what reaches this is the verdict, and signals never succeed.
        let (ok, bad) = (true, false);
        assert_eq!(
            after_exit(RestartPolicy::Always, &b, ok, ms(1), 0).0,
            Verdict::Restart(ms(100))
        );
        assert_eq!(
            after_exit(RestartPolicy::OnFailure, &b, ok, ms(1), 0).0,
            Verdict::Stay
        );
        assert_eq!(
            after_exit(RestartPolicy::OnFailure, &b, bad, ms(1), 0).0,
            Verdict::Restart(ms(100))
        );
        assert_eq!(
            after_exit(RestartPolicy::OnFailure, &b, bad, ms(0), 0).0,
            Verdict::Restart(ms(100))
        );
        assert_eq!(
            after_exit(RestartPolicy::Never, &b, bad, ms(1), 0).0,
            Verdict::Stay
        );
    }

    #[test]
    fn budget_counts_quick_failures_and_long_runs_reset_it() {
        let b = Backoff {
            limit: Some(3),
            ..Backoff::default()
        };
        let bad = false;
        let mut failures = 0;
        let mut verdicts = Vec::new();
        for _ in 0..4 {
            let (v, f) = after_exit(RestartPolicy::Always, &b, bad, ms(5), failures);
            failures = f;
            verdicts.push(v);
        }
        assert_eq!(
            verdicts,
            [
                Verdict::Restart(ms(100)),
                Verdict::Restart(ms(200)),
                Verdict::Restart(ms(400)),
                Verdict::GiveUp
            ]
        );
        // A run longer than reset_after starts over at the first delay.
        let (v, f) = after_exit(RestartPolicy::Always, &b, bad, b.reset_after, 3);
        assert_eq!((v, f), (Verdict::Restart(ms(100)), 1));
        // No limit: never gives up.
        let unlimited = Backoff { limit: None, ..b };
        assert_eq!(
            after_exit(RestartPolicy::Always, &unlimited, bad, ms(1), 1000).0,
            Verdict::Restart(unlimited.max)
        );
    }
}
