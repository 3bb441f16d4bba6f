//! Scheduled oneshots: when each runs next, what a due time does while the
//! last run still runs (`overlap`), and what happens to due times that
//! passed unnoticed (`missed`). Pure: the supervisor hands in both clocks
//! with every event.
//!
//! A cron schedule is a wall-clock time: it is kept as one, and its
//! monotonic deadline is worked out again from the wall clock at every
//! event, so a clock step moves it. A step backward never runs a job twice:
//! the next run stays the one after the last. A step forward (or a machine
//! that slept, a container that was paused) past a due time makes it late;
//! a due time noticed more than `MISSED_AFTER` late was missed. An `every`
//! schedule counts elapsed (monotonic) time and is not moved by the clock.
//!
//! DST follows croner: a time that a spring-forward gap skips runs at the
//! first instant after the gap; in a fall-back repeat, a fixed-time job
//! (one value each for second, minute and hour) runs once, the first time,
//! and any other runs in both.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use tracing::{info, warn};

use super::*;
use crate::config::schedule::{
    MISSED_AFTER, Missed, Overlap, ScheduleSpec, When, next_cron, rfc3339,
};

/// The two clocks at one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub mono: Instant,
    pub wall: Timestamp,
}

/// The next start of a scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    /// The time the schedule names (before jitter); the next one is
    /// counted from it.
    nominal_wall: Timestamp,
    nominal_mono: Instant,
    /// This run's jitter.
    jitter: Duration,
    /// When it starts: nominal plus jitter; kept in step with the wall
    /// clock for cron schedules.
    mono: Instant,
}

/// The run-time record of one scheduled job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `None` until boot (and during shutdown nothing is armed anew).
    next: Option<Due>,
    /// Runs started (by the schedule, `at_start`, `svctl run` or `start`).
    pub runs: u64,
    /// Due times that did not run: overlap = "skip", missed = "skip".
    pub skipped: u64,
    /// Runs that ended, by how: exit 0, or anything else (a failure
    /// status, a signal, no process at all).
    pub succeeded: u64,
    pub failed: u64,
    /// A run is due right after the running one (overlap = "queue").
    pub queued: bool,
    /// The current (or last) run: when it started, by both clocks.
    started: Option<(Instant, Timestamp)>,
    /// A process of this job exists (as the supervisor last saw it).
    running: bool,
    pub last_run: Option<Timestamp>,
    pub last_exit: Option<ExitStatus>,
    pub last_duration: Option<Duration>,
    /// Why the last run got no process (its spawn failed), if it did not.
    pub last_error: Option<String>,
    /// State of the jitter generator (splitmix64).
    rng: u64,
}

/// What a due time asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Start a run (overlap decides if one is running).
    Run,
    /// Nothing: the due time was missed and `missed = "skip"`.
    Nothing,
}

impl Schedule {
    /// A schedule not armed yet; `seed` makes each container's jitter its
    /// own (the name, each job's).
    pub fn new(name: &str, seed: u64) -> Schedule {
        let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Schedule {
            next: None,
            runs: 0,
            skipped: 0,
            succeeded: 0,
            failed: 0,
            queued: false,
            started: None,
            running: false,
            last_run: None,
            last_exit: None,
            last_duration: None,
            last_error: None,
            rng: seed ^ name_hash,
        }
    }

    /// When the next run starts, for the event loop.
    pub fn deadline(&self) -> Option<Instant> {
        self.next.map(|d| d.mono)
    }

    /// For a cron schedule, the wall-clock time the next run starts at.
    pub fn wall_deadline(&self, spec: &ScheduleSpec) -> Option<Timestamp> {
        let d = self.next?;
        match spec.when {
            When::Cron { .. } => d
                .nominal_wall
                .checked_add(jiff::SignedDuration::try_from(d.jitter).ok()?)
                .ok(),
            When::Every(_) => None,
        }
    }

    /// The next start as a wall-clock time.
    pub fn next_wall(&self, clock: Clock) -> Option<Timestamp> {
        let d = self.next?;
        let ahead = d.mono.saturating_duration_since(clock.mono);
        let behind = clock.mono.saturating_duration_since(d.mono);
        let span = |d: Duration| jiff::SignedDuration::try_from(d).unwrap_or_default();
        clock
            .wall
            .checked_add(span(ahead))
            .and_then(|t| t.checked_sub(span(behind)))
            .ok()
    }

    /// Arms the schedule from now: the first due time after `clock`.
    pub fn arm(&mut self, spec: &ScheduleSpec, clock: Clock) {
        self.next = self.following(spec, clock, None);
    }

    /// Stops planning runs (shutdown).
    pub fn disarm(&mut self) {
        self.next = None;
    }

    pub fn is_armed(&self) -> bool {
        self.next.is_some()
    }

    /// Moves a cron schedule's monotonic deadline to where the wall clock
    /// now puts it; `every` is left alone.
    pub fn resync(&mut self, spec: &ScheduleSpec, clock: Clock) {
        if let (When::Cron { .. }, Some(d)) = (&spec.when, &mut self.next) {
            d.nominal_mono = mono_at(d.nominal_wall, clock);
            d.mono = d.nominal_mono + d.jitter;
        }
    }

    /// The due time has come (`deadline() <= clock.mono`): plans the next
    /// one and says whether to run. `name` is for the log.
    pub fn on_due(&mut self, spec: &ScheduleSpec, clock: Clock, name: &str) -> Option<Fire> {
        let due = self.next.filter(|d| d.mono <= clock.mono)?;
        let late = clock.mono.saturating_duration_since(due.mono);
        self.next = self.following(spec, clock, Some(due));
        if late <= MISSED_AFTER {
            return Some(Fire::Run);
        }
        // Every due time from this one to now was missed.
        let missed = self.count_missed(spec, due, clock);
        match spec.missed {
            Missed::Skip => {
                self.skipped += missed;
                warn!(
                    "{name}: {missed} run(s) missed (noticed {} s late: the machine slept, the clock jumped or the container was paused); skipped (missed = \"skip\")",
                    late.as_secs()
                );
                Some(Fire::Nothing)
            }
            Missed::RunOnce => {
                self.skipped += missed.saturating_sub(1);
                warn!(
                    "{name}: {missed} run(s) missed (noticed {} s late); running once now (missed = \"run-once\")",
                    late.as_secs()
                );
                Some(Fire::Run)
            }
        }
    }

    /// A due time came while a run was still going: `overlap` decides.
    /// Returns whether the running one must be replaced.
    pub fn on_overlap(&mut self, spec: &ScheduleSpec, name: &str) -> bool {
        match spec.overlap {
            Overlap::Skip => {
                self.skipped += 1;
                info!(
                    "{name}: a run is due while the last one still runs: skipped (overlap = \"skip\")"
                );
                false
            }
            Overlap::Queue => {
                if self.queued {
                    self.skipped += 1;
                    info!("{name}: a run is due while one runs and one waits: skipped");
                } else {
                    self.queued = true;
                    info!(
                        "{name}: a run is due while the last one still runs: queued (overlap = \"queue\")"
                    );
                }
                false
            }
            Overlap::Replace => {
                info!(
                    "{name}: a run is due while the last one still runs: replacing it (overlap = \"replace\")"
                );
                true
            }
        }
    }

    /// The supervisor saw the job's process appear or go (`succeeded`: its
    /// last exit counts as success); returns true when a queued run should
    /// start now.
    pub fn observe(
        &mut self,
        active: bool,
        last_exit: Option<ExitStatus>,
        succeeded: bool,
        clock: Clock,
    ) -> bool {
        match (self.running, active) {
            (false, true) => {
                self.running = true;
                self.runs += 1;
                self.started = Some((clock.mono, clock.wall));
                self.last_run = Some(clock.wall);
                self.last_error = None;
                false
            }
            (true, false) => {
                self.running = false;
                if let Some((mono, _)) = self.started {
                    self.last_duration = Some(clock.mono.saturating_duration_since(mono));
                }
                self.last_exit = last_exit;
                if succeeded {
                    self.succeeded += 1;
                } else {
                    self.failed += 1;
                }
                std::mem::take(&mut self.queued)
            }
            (false, false) | (true, true) => false,
        }
    }

    /// A run's spawn failed: it counts as a run that has no exit status,
    /// only the reason.
    pub fn failed_to_start(&mut self, reason: &str, clock: Clock) {
        self.runs += 1;
        self.failed += 1;
        self.last_run = Some(clock.wall);
        self.last_exit = None;
        self.last_duration = None;
        self.last_error = Some(reason.to_string());
    }

    /// The due time after `after` (or the first from now), with its jitter.
    fn following(&mut self, spec: &ScheduleSpec, clock: Clock, after: Option<Due>) -> Option<Due> {
        let jitter = self.draw(spec.jitter);
        match &spec.when {
            When::Every(period) => {
                let mut nominal = match after {
                    None => clock.mono + *period,
                    Some(d) => d.nominal_mono + *period,
                };
                if nominal <= clock.mono {
                    // Late: the next multiple of the period after now.
                    let behind = clock.mono.saturating_duration_since(nominal);
                    let periods = behind.as_nanos() / period.as_nanos().max(1) + 1;
                    let step = period.saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
                    nominal += step;
                }
                let ahead = nominal.saturating_duration_since(clock.mono);
                let wall = clock
                    .wall
                    .checked_add(jiff::SignedDuration::try_from(ahead).unwrap_or_default())
                    .unwrap_or(clock.wall);
                Some(Due {
                    nominal_wall: wall,
                    nominal_mono: nominal,
                    jitter,
                    mono: nominal + jitter,
                })
            }
            When::Cron { cron, tz, .. } => {
                // After the last due time, or now if that is earlier (a
                // late run) — never a due time at or before the last one.
                let from = match after {
                    Some(d) if d.nominal_wall > clock.wall => d.nominal_wall,
                    _ => clock.wall,
                };
                let next = next_cron(cron, tz, from)?;
                let nominal_mono = mono_at(next, clock);
                Some(Due {
                    nominal_wall: next,
                    nominal_mono,
                    jitter,
                    mono: nominal_mono + jitter,
                })
            }
        }
    }

    /// How many due times from `due` up to now were missed (at most 10,000
    /// are counted).
    fn count_missed(&self, spec: &ScheduleSpec, due: Due, clock: Clock) -> u64 {
        match &spec.when {
            When::Every(period) => {
                let behind = clock.mono.saturating_duration_since(due.nominal_mono);
                (behind.as_nanos() / period.as_nanos().max(1)) as u64 + 1
            }
            When::Cron { cron, tz, .. } => {
                let mut n = 1;
                let mut t = due.nominal_wall;
                while n < 10_000 {
                    match next_cron(cron, tz, t) {
                        Some(next) if next <= clock.wall => {
                            n += 1;
                            t = next;
                        }
                        _ => break,
                    }
                }
                n
            }
        }
    }

    /// A uniformly drawn delay below `max` (none when it is zero).
    fn draw(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        // splitmix64: a generator, not a secret; the runtime seeds it.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(z % nanos)
    }
}

/// The monotonic instant at which the wall clock will show `at` (or showed
/// it: then an instant in the past), as the clocks stand now.
fn mono_at(at: Timestamp, clock: Clock) -> Instant {
    let until = clock.wall.duration_until(at);
    match Duration::try_from(until) {
        Ok(ahead) => clock.mono + ahead,
        Err(_) => clock
            .mono
            .checked_sub(until.unsigned_abs())
            .unwrap_or(clock.mono),
    }
}

/// A reload gave `s` another `[schedule]` (or none): the record follows,
/// keeping its counters, and is armed anew from the new schedule.
pub(super) fn refresh(s: &mut Service, seed: u64) {
    match (&s.spec.schedule, &mut s.schedule) {
        (None, record) => *record = None,
        (Some(_), Some(record)) => record.disarm(),
        (Some(_), record @ None) => *record = Some(Schedule::new(&s.spec.name, seed)),
    }
}

impl Supervisor {
    /// Every event: cron deadlines follow the wall clock.
    pub(super) fn resync_schedules(&mut self) {
        let clock = self.clock;
        for s in self.services.iter_mut() {
            if let (Some(spec), Some(record)) = (&s.spec.schedule, &mut s.schedule) {
                record.resync(spec, clock);
            }
        }
    }

    /// After every event: arms schedules once booted, notes runs starting
    /// and ending, starts what is due or queued, and plans nothing once
    /// shutdown began.
    pub(super) fn settle_schedules(&mut self, now: Instant, out: &mut Vec<Action>) {
        let clock = self.clock;
        let up = self.phase == Phase::Up && self.booted;
        let mut start = Vec::new();
        let mut replace = Vec::new();
        for s in self.services.iter_mut() {
            let (Some(spec), Some(record)) = (&s.spec.schedule, &mut s.schedule) else {
                continue;
            };
            let succeeded = s.last_exit.is_some_and(|st| st.succeeded(&s.spec));
            let queued = record.observe(s.state.is_active(), s.last_exit, succeeded, clock);
            // A disabled job (suspended) plans nothing; svctl run still
            // runs it.
            if !up || !s.spec.enabled {
                record.disarm();
                continue;
            }
            if !record.is_armed() {
                record.arm(spec, clock);
            }
            if queued {
                start.push(s.id);
            }
            if record.on_due(spec, clock, &s.spec.name) == Some(Fire::Run) {
                if s.state.is_active() || start.contains(&s.id) {
                    if record.on_overlap(spec, &s.spec.name) {
                        replace.push(s.id);
                    }
                } else {
                    info!("{}: scheduled run", s.spec.name);
                    start.push(s.id);
                }
            }
        }
        for id in start {
            self.request_start(id, now);
        }
        for id in replace {
            self.request_restart(id, now, out);
        }
    }

    /// What status shows of a scheduled job. `every` times are shown in
    /// the container's zone.
    pub(super) fn schedule_status(&self, s: &Service) -> Option<crate::proto::ScheduleStatus> {
        let (spec, record) = (s.spec.schedule.as_ref()?, s.schedule.as_ref()?);
        let tz = &spec.shown_in;
        let next = if self.phase == Phase::Up {
            record.next_wall(self.clock)
        } else {
            None
        };
        Some(crate::proto::ScheduleStatus {
            when: spec.when.to_string(),
            next_run: next.map(|t| rfc3339(t, tz)),
            last_run: record.last_run.map(|t| rfc3339(t, tz)),
            last_exit: record.last_exit.map(ExitStatus::to_proto),
            last_duration_ms: record.last_duration.map(|d| d.as_millis() as u64),
            last_error: record.last_error.clone(),
            runs: record.runs,
            skipped: record.skipped,
            queued: record.queued,
        })
    }

    /// `svctl run NAME`: a run now, as if it were due (overlap applies
    /// while one runs). Not for longruns (svctl refuses those).
    pub(super) fn request_run(&mut self, id: ServiceId, now: Instant, out: &mut Vec<Action>) {
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        if !s.spec.is_oneshot() {
            return;
        }
        if !s.state.is_active() {
            self.request_start(id, now);
            return;
        }
        let replace = match (&s.spec.schedule, &mut s.schedule) {
            (Some(spec), Some(record)) => record.on_overlap(spec, &s.spec.name),
            // An unscheduled oneshot is never run twice at once.
            _ => false,
        };
        if replace {
            self.request_restart(id, now, out);
        }
    }
}
