//! Health checks with Docker HEALTHCHECK semantics: a check every
//! `interval`, a check slower than `timeout` fails, `retries` failures in a
//! row make the service unhealthy, failures during `start_period` do not
//! count, and one success makes it healthy again. Pure bookkeeping.

use std::time::Instant;

use crate::config::probes::HealthSpec;

/// What status shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// No verdict yet (no success, not enough failures).
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn word(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The health record of one ready process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub status: HealthStatus,
    /// Failed checks in a row that counted.
    pub failures: u32,
    /// When the next check starts; `None` while one is in flight.
    pub next: Option<Instant>,
    /// When the check in flight times out.
    pub in_flight_until: Option<Instant>,
    /// The last line of the last check's output, or why it failed.
    pub output: Option<String>,
    /// Failures before this instant do not count (start_period).
    pub grace_until: Instant,
}

impl HealthCheck {
    /// Checks begin one interval after the process became ready.
    pub fn new(spec: &HealthSpec, started: Instant, now: Instant) -> HealthCheck {
        HealthCheck {
            status: HealthStatus::Starting,
            failures: 0,
            next: Some(now + spec.interval),
            in_flight_until: None,
            output: None,
            grace_until: started + spec.start_period,
        }
    }

    /// A check is sent now.
    pub fn begin(&mut self, spec: &HealthSpec, now: Instant) {
        self.next = None;
        self.in_flight_until = Some(now + spec.timeout);
    }

    /// Records a result; returns true when this made the service unhealthy
    /// (the transition, not every failure after it).
    pub fn record(&mut self, spec: &HealthSpec, ok: bool, output: String, now: Instant) -> bool {
        self.in_flight_until = None;
        self.next = Some(now + spec.interval);
        self.output = Some(output);
        if ok {
            self.failures = 0;
            self.status = HealthStatus::Healthy;
            return false;
        }
        if now < self.grace_until {
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= spec.retries && self.status != HealthStatus::Unhealthy {
            self.status = HealthStatus::Unhealthy;
            return true;
        }
        false
    }

    /// The earliest instant this record needs attention.
    pub fn deadline(&self) -> Option<Instant> {
        self.next.or(self.in_flight_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::probes::{OnUnhealthy, Probe};
    use std::time::Duration;

    fn spec() -> HealthSpec {
        HealthSpec {
            probe: Probe::File("/x".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            retries: 3,
            start_period: Duration::from_secs(5),
            on_unhealthy: OnUnhealthy::Nothing,
        }
    }

    #[test]
    fn docker_semantics() {
        let spec = spec();
        let t0 = Instant::now();
        let mut h = HealthCheck::new(&spec, t0, t0);
        assert_eq!(h.deadline(), Some(t0 + spec.interval));
        h.begin(&spec, t0);
        assert_eq!(h.deadline(), Some(t0 + spec.timeout));
        // Failures inside start_period do not count.
        for _ in 0..5 {
            assert!(!h.record(&spec, false, "refused".into(), t0 + Duration::from_secs(1)));
        }
        assert_eq!((h.status, h.failures), (HealthStatus::Starting, 0));
        // A success during start_period makes it healthy.
        h.record(&spec, true, "ok".into(), t0 + Duration::from_secs(2));
        assert_eq!(h.status, HealthStatus::Healthy);
        // After it, `retries` failures in a row make it unhealthy, once.
        let late = t0 + Duration::from_secs(10);
        assert!(!h.record(&spec, false, "x".into(), late));
        assert!(!h.record(&spec, false, "x".into(), late));
        assert!(h.record(&spec, false, "x".into(), late));
        assert!(!h.record(&spec, false, "x".into(), late));
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.output.as_deref(), Some("x"));
        // One success heals.
        h.record(&spec, true, "back".into(), late);
        assert_eq!((h.status, h.failures), (HealthStatus::Healthy, 0));
        assert_eq!(h.next, Some(late + spec.interval));
    }
}
