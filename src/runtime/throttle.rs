//! Warnings that something outside corral can trigger at will (refused
//! notify datagrams, refused control connections) are logged at most once
//! per period, with the count of those not logged: a flood must not turn
//! corral's own log into the attacker's megaphone.

use std::time::{Duration, Instant};

use tracing::warn;

/// One rate-limited warning.
#[derive(Debug, Default)]
pub struct Throttle {
    /// When a warning was last logged, and how many were held back since.
    last: Option<(Instant, u64)>,
}

/// The period of every throttled warning.
pub const EVERY: Duration = Duration::from_secs(10);

impl Throttle {
    /// Logs `message` unless one was logged less than `EVERY` ago.
    pub fn warn(&mut self, now: Instant, message: impl FnOnce() -> String) {
        match &mut self.last {
            Some((at, quiet)) if now.duration_since(*at) < EVERY => *quiet += 1,
            last => {
                let quiet = last.map_or(0, |(_, q)| q);
                let more = if quiet > 0 {
                    format!(" ({quiet} more like it since the last warning)")
                } else {
                    String::new()
                };
                warn!("{}{more}", message());
                *last = Some((now, 0));
            }
        }
    }

    /// Whether the next `warn` at `now` would be logged.
    #[cfg(test)]
    fn open(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|(at, _)| now.duration_since(at) >= EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_and_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert!(t.open(t0));
        t.warn(t0, || "first".into());
        for i in 1..5 {
            t.warn(t0 + Duration::from_secs(i), || unreachable!("held back"));
        }
        assert_eq!(t.last, Some((t0, 4)));
        assert!(t.open(t0 + EVERY));
        t.warn(t0 + EVERY, || "again".into());
        assert_eq!(t.last, Some((t0 + EVERY, 0)));
    }
}
