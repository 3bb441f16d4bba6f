//! What `svctl events` streams: after each event the supervisor handles,
//! while someone listens, every service's observable facts (its state word,
//! its process, readiness, health, its schedule's counters) are compared
//! with what was last seen, and each difference becomes one `EventLine`.
//! Comparing instead of hooking every transition means no transition can
//! be forgotten; it costs one pass over the services per event, and only
//! while a listener is connected. Pure: no system calls.

use std::collections::HashMap;

use super::{Readiness, Service, ServiceId, State, Supervisor};
use crate::proto::EventLine;

/// What a listener can see of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    name: String,
    state: &'static str,
    pid: Option<i32>,
    starts: u64,
    ready: bool,
    health: Option<&'static str>,
    runs: u64,
    skipped: u64,
}

impl Observed {
    fn of(s: &Service) -> Observed {
        let ready = match &s.state {
            State::Running { ready, .. } => matches!(ready, Readiness::Ready { .. }),
            _ => false,
        };
        Observed {
            name: s.spec.name.clone(),
            state: s.state.word(),
            pid: s.state.pid(),
            starts: s.starts,
            ready,
            health: s.health().map(|h| h.status.word()),
            runs: s.schedule.as_ref().map_or(0, |r| r.runs),
            skipped: s.schedule.as_ref().map_or(0, |r| r.skipped),
        }
    }
}

/// The last facts seen of every service, while someone listens.
#[derive(Debug, Default)]
pub struct Journal {
    seen: Option<HashMap<ServiceId, Observed>>,
}

impl Journal {
    pub fn listening(&self) -> bool {
        self.seen.is_some()
    }
}

impl Supervisor {
    /// Starts (`true`) or stops comparing. Starting takes the present as
    /// seen: a listener hears what changes from now on.
    pub fn set_listening(&mut self, on: bool) {
        match (on, self.journal.listening()) {
            (true, false) => {
                let seen = self
                    .services
                    .iter()
                    .map(|s| (s.id, Observed::of(s)))
                    .collect();
                self.journal.seen = Some(seen);
            }
            (false, true) => self.journal.seen = None,
            (true, true) | (false, false) => {}
        }
    }

    /// The differences since the last call, as event lines stamped `time`.
    pub(super) fn journal_lines(&mut self, time: &str) -> Vec<EventLine> {
        let Some(mut seen) = self.journal.seen.take() else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        let line = |service: &str, event: &str| EventLine {
            time: time.to_string(),
            service: Some(service.to_string()),
            event: event.to_string(),
            ..EventLine::default()
        };
        for s in self.services.iter() {
            let now = Observed::of(s);
            let name = &s.spec.name;
            let Some(was) = seen.get(&s.id) else {
                lines.push(EventLine {
                    to: Some(now.state.to_string()),
                    ..line(name, "added")
                });
                seen.insert(s.id, now);
                continue;
            };
            if *was == now {
                continue;
            }
            // A process gone (or replaced): its exit first.
            if was.pid.is_some() && was.pid != now.pid {
                lines.push(EventLine {
                    pid: was.pid,
                    exit: s.last_exit.map(|e| e.to_proto()),
                    ..line(name, "exited")
                });
            }
            if now.starts > was.starts && now.pid.is_some() {
                lines.push(EventLine {
                    pid: now.pid,
                    ..line(name, "started")
                });
            }
            if was.state != now.state {
                lines.push(EventLine {
                    from: Some(was.state.to_string()),
                    to: Some(now.state.to_string()),
                    note: self.note(s.id, self.clock.mono),
                    ..line(name, "state")
                });
            }
            if now.ready && !was.ready {
                let ready_ms = match &s.state {
                    State::Running {
                        started,
                        ready: Readiness::Ready { at, .. },
                        ..
                    } => Some(at.saturating_duration_since(*started).as_millis() as u64),
                    _ => None,
                };
                lines.push(EventLine {
                    ready_ms,
                    ..line(name, "ready")
                });
            }
            if was.health != now.health
                && let Some(h) = now.health
            {
                lines.push(EventLine {
                    health: Some(h.to_string()),
                    output: s.health().and_then(|h| h.output.clone()),
                    ..line(name, "health")
                });
            }
            if now.runs > was.runs {
                lines.push(line(name, "run"));
            }
            if now.skipped > was.skipped {
                lines.push(EventLine {
                    note: Some(format!("{} due time(s) skipped", now.skipped - was.skipped)),
                    ..line(name, "skipped")
                });
            }
            seen.insert(s.id, now);
        }
        // Services a reload removed.
        let gone: Vec<ServiceId> = seen
            .keys()
            .filter(|id| self.services.get(**id).is_none())
            .copied()
            .collect();
        for id in gone {
            if let Some(was) = seen.remove(&id) {
                lines.push(line(&was.name, "removed"));
            }
        }
        self.journal.seen = Some(seen);
        lines
    }
}
