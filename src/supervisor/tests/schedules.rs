//! Scheduled oneshots with an injected clock: the calendar (DST gap and
//! repeat, month ends, leap days), clock steps (a day forward, an hour
//! back), overlap, missed runs, boot and shutdown.

use super::*;
use crate::config::schedule::{Missed, Overlap, ScheduleSpec, When, next_cron, parse_cron};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Central European time as a POSIX rule: needs no zoneinfo, so these
/// tests run anywhere. Summer time from the last Sunday of March 02:00 to
/// the last Sunday of October 03:00.
fn cet() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

fn cron(expr: &str, tz: TimeZone) -> ScheduleSpec {
    ScheduleSpec {
        when: When::Cron {
            cron: Box::new(parse_cron(expr).unwrap()),
            text: expr.into(),
            tz: tz.clone(),
            tz_name: "test".into(),
        },
        at_start: false,
        overlap: Overlap::Skip,
        jitter: Duration::ZERO,
        missed: Missed::Skip,
        shown_in: tz,
    }
}

fn every(d: Duration) -> ScheduleSpec {
    ScheduleSpec {
        when: When::Every(d),
        shown_in: TimeZone::UTC,
        ..cron("* * * * *", TimeZone::UTC)
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The next `n` times after `from`, as RFC 3339 in `tz`.
fn next_n(expr: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
    let c = parse_cron(expr).unwrap();
    let mut t = ts(from);
    (0..n)
        .map(|_| {
            t = next_cron(&c, tz, t).unwrap();
            crate::config::schedule::rfc3339(t, tz)
        })
        .collect()
}

#[test]
fn a_time_in_the_spring_gap_runs_right_after_it() {
    // 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    assert_eq!(
        next_n("30 2 * * *", &cet(), "2027-03-27T00:00:00Z", 3),
        [
            "2027-03-27T02:30:00+01:00",
            "2027-03-28T03:00:00+02:00",
            "2027-03-29T02:30:00+02:00"
        ]
    );
}

#[test]
fn the_autumn_repeat_runs_a_fixed_time_once_and_a_wildcard_twice() {
    // 2027-10-31: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 twice.
    assert_eq!(
        next_n("30 2 * * *", &cet(), "2027-10-30T12:00:00Z", 2),
        ["2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]
    );
    assert_eq!(
        next_n("*/30 2 * * *", &cet(), "2027-10-30T23:00:00Z", 4),
        [
            "2027-10-31T02:00:00+02:00",
            "2027-10-31T02:30:00+02:00",
            "2027-10-31T02:00:00+01:00",
            "2027-10-31T02:30:00+01:00"
        ]
    );
}

#[test]
fn month_ends_and_leap_days() {
    let utc = TimeZone::UTC;
    // The 31st skips the months without one.
    assert_eq!(
        next_n("0 0 31 * *", &utc, "2027-01-31T00:00:00Z", 3),
        [
            "2027-03-31T00:00:00+00:00",
            "2027-05-31T00:00:00+00:00",
            "2027-07-31T00:00:00+00:00"
        ]
    );
    // The 29th of February waits for a leap year (2100 is none).
    assert_eq!(
        next_n("0 12 29 feb *", &utc, "2027-01-01T00:00:00Z", 2),
        ["2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"]
    );
    assert_eq!(
        next_n("0 0 29 2 *", &utc, "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00+00:00"]
    );
    // Six fields: seconds first.
    assert_eq!(
        next_n("*/20 0 0 1 1 *", &utc, "2027-01-01T00:00:00Z", 3),
        [
            "2027-01-01T00:00:20+00:00",
            "2027-01-01T00:00:40+00:00",
            "2028-01-01T00:00:00+00:00"
        ]
    );
    assert_eq!(
        next_n("@weekly", &utc, "2027-01-15T12:00:00Z", 1),
        ["2027-01-17T00:00:00+00:00"]
    );
}

/// A supervisor with one scheduled job that sleeps until told to exit.
fn job(schedule: ScheduleSpec) -> Sim {
    let mut s = spec("job", &[]);
    s.kind = Kind::Oneshot {
        timeout: None,
        optional: false,
    };
    s.schedule = Some(schedule);
    let mut sim = Sim::new(vec![s, spec("web", &[])], false);
    sim.run(Event::Boot);
    sim
}

fn record(sim: &Sim) -> &Schedule {
    sim.sup
        .services()
        .get(sim.id("job"))
        .unwrap()
        .schedule
        .as_ref()
        .unwrap()
}

fn next_run(sim: &Sim) -> Option<Timestamp> {
    record(sim).next_wall(sim.sup.clock)
}

impl Sim {
    /// The wall clock steps by `d` (monotonic time does not move).
    fn step_wall(&mut self, d: SignedDuration) -> Vec<Action> {
        self.wall = self.wall.checked_add(d).unwrap();
        self.run(Event::Tick)
    }
}

#[test]
fn a_scheduled_job_waits_for_its_time_not_for_boot() {
    let sim = job(cron("0 * * * *", TimeZone::UTC));
    // Boot started web only; startup is done without the job.
    assert_eq!(sim.state("job"), &State::Stopped);
    assert!(matches!(sim.state("web"), State::Running { .. }));
    assert_eq!(sim.sup.startup, Startup::Done);
    assert!(sim.sup.complaints().is_empty());
    assert_eq!(next_run(&sim), Some(ts("2027-01-15T13:00:00Z")));
    // Its deadline is the loop's.
    assert_eq!(
        sim.sup.next_deadline(),
        Some(sim.now + Duration::from_secs(3600))
    );
}

#[test]
fn runs_land_on_their_times_and_results_are_recorded() {
    let mut sim = job(cron("0 * * * *", TimeZone::UTC));
    assert!(
        spawned(&sim.advance(Duration::from_secs(3599))).is_empty(),
        "too early"
    );
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(1))),
        [sim.id("job")]
    );
    sim.advance(Duration::from_secs(2));
    sim.exit("job", ExitStatus::Code(3));
    let r = record(&sim);
    assert_eq!((r.runs, r.skipped), (1, 0));
    assert_eq!(r.last_run, Some(ts("2027-01-15T13:00:00Z")));
    assert_eq!(r.last_exit, Some(ExitStatus::Code(3)));
    assert_eq!(r.last_duration, Some(Duration::from_secs(2)));
    // A failed run neither stops the container nor shows in health.
    assert!(!sim.sup.is_shutting_down());
    assert!(sim.sup.complaints().is_empty());
    assert_eq!(next_run(&sim), Some(ts("2027-01-15T14:00:00Z")));
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(3598))),
        [sim.id("job")],
        "a failed run does not keep the next from starting"
    );
}

#[test]
fn a_day_forward_misses_runs_once_at_most() {
    let mut sim = job(cron("0 * * * *", TimeZone::UTC));
    // The clock steps a day forward (a suspended host, an NTP step).
    let actions = sim.step_wall(SignedDuration::from_hours(24));
    assert!(spawned(&actions).is_empty(), "missed = skip runs nothing");
    assert_eq!(record(&sim).skipped, 24);
    assert_eq!(next_run(&sim), Some(ts("2027-01-16T13:00:00Z")));

    let mut catch_up = cron("0 * * * *", TimeZone::UTC);
    catch_up.missed = Missed::RunOnce;
    let mut sim = job(catch_up);
    let actions = sim.step_wall(SignedDuration::from_hours(24));
    assert_eq!(spawned(&actions), [sim.id("job")], "one catch-up run");
    sim.exit("job", ExitStatus::Code(0));
    assert_eq!(record(&sim).runs, 1);
    assert_eq!(record(&sim).skipped, 23);
    assert!(spawned(&sim.run(Event::Tick)).is_empty(), "never a burst");
}

#[test]
fn an_hour_back_never_runs_a_job_twice() {
    let mut sim = job(cron("0 * * * *", TimeZone::UTC));
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(3600))),
        [sim.id("job")]
    );
    sim.exit("job", ExitStatus::Code(0));
    // 13:00 ran; the clock steps back to 12:00:00.
    sim.step_wall(SignedDuration::from_hours(-1));
    assert_eq!(next_run(&sim), Some(ts("2027-01-15T14:00:00Z")));
    assert_eq!(
        sim.sup.next_deadline(),
        Some(sim.now + Duration::from_secs(2 * 3600)),
        "the deadline follows the wall clock"
    );
    assert!(
        spawned(&sim.advance(Duration::from_secs(3600))).is_empty(),
        "13:00 again"
    );
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(3600))),
        [sim.id("job")]
    );
    assert_eq!(record(&sim).runs, 2);
}

#[test]
fn every_counts_elapsed_time_and_ignores_the_clock() {
    let mut sim = job(every(Duration::from_secs(600)));
    sim.step_wall(SignedDuration::from_hours(-5));
    assert!(spawned(&sim.advance(Duration::from_secs(599))).is_empty());
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(1))),
        [sim.id("job")]
    );
    sim.exit("job", ExitStatus::Code(0));
    // Anchored to its due times: no drift from the run's length.
    assert_eq!(
        sim.sup.next_deadline(),
        Some(sim.now + Duration::from_secs(600))
    );
}

#[test]
fn overlap_skip_queue_and_replace() {
    let period = Duration::from_secs(10);
    // skip: counted, nothing started.
    let mut sim = job(every(period));
    sim.advance(period);
    let first = sim.pid("job");
    assert!(spawned(&sim.advance(period)).is_empty());
    assert_eq!(record(&sim).skipped, 1);
    assert_eq!(sim.pid("job"), first);

    // queue: the next run starts as soon as the running one ends.
    let mut queued = every(period);
    queued.overlap = Overlap::Queue;
    let mut sim = job(queued);
    sim.advance(period);
    sim.advance(period);
    assert!(record(&sim).queued);
    let again = sim.exit("job", ExitStatus::Code(0));
    assert_eq!(spawned(&again), [sim.id("job")]);
    assert_eq!(record(&sim).runs, 2);
    assert!(!record(&sim).queued);

    // replace: the running one is stopped, then the new one starts.
    let mut replaced = every(period);
    replaced.overlap = Overlap::Replace;
    let mut sim = job(replaced);
    sim.advance(period);
    let old = sim.pid("job");
    let actions = sim.advance(period);
    assert!(actions.contains(&term(old)), "{actions:?}");
    let actions = sim.exit("job", ExitStatus::Signaled(Signal::SIGTERM));
    assert_eq!(spawned(&actions), [sim.id("job")]);
    assert_eq!(record(&sim).runs, 2);
}

#[test]
fn a_disabled_job_is_suspended_but_runs_by_hand() {
    let mut s = spec("job", &[]);
    s.kind = Kind::Oneshot {
        timeout: None,
        optional: false,
    };
    s.enabled = false;
    s.schedule = Some(every(Duration::from_secs(10)));
    let mut sim = Sim::new(vec![s], false);
    sim.run(Event::Boot);
    assert!(spawned(&sim.advance(Duration::from_secs(60))).is_empty());
    assert_eq!(record(&sim).deadline(), None);
    let actions = sim.run(Event::RunRequested(vec![sim.id("job")]));
    assert_eq!(spawned(&actions), [sim.id("job")]);
}

#[test]
fn at_start_runs_at_boot_and_svctl_run_runs_now() {
    let mut at_start = cron("0 0 1 1 *", TimeZone::UTC);
    at_start.at_start = true;
    let sim = job(at_start);
    assert!(matches!(sim.state("job"), State::Running { .. }));
    // Startup does not wait for it.
    assert_eq!(sim.sup.startup, Startup::Done);

    let mut sim = job(cron("0 0 1 1 *", TimeZone::UTC));
    let actions = sim.run(Event::RunRequested(vec![sim.id("job")]));
    assert_eq!(spawned(&actions), [sim.id("job")]);
    // While it runs, a second request follows overlap = "skip".
    let actions = sim.run(Event::RunRequested(vec![sim.id("job")]));
    assert!(spawned(&actions).is_empty());
    assert_eq!(record(&sim).skipped, 1);
}

#[test]
fn nothing_starts_once_shutdown_began_and_a_running_job_is_stopped() {
    let mut sim = job(every(Duration::from_secs(10)));
    sim.advance(Duration::from_secs(10));
    let pid = sim.pid("job");
    let actions = sim.run(Event::SignalReceived(Signal::SIGTERM));
    assert!(actions.contains(&term(pid)), "{actions:?}");
    sim.exit("job", ExitStatus::Signaled(Signal::SIGTERM));
    let actions = sim.advance(Duration::from_secs(20));
    assert!(spawned(&actions).is_empty(), "{actions:?}");
    assert!(
        record(&sim).deadline().is_none(),
        "no run is planned during shutdown"
    );
}

#[test]
fn jitter_delays_each_run_by_its_own_draw_below_the_bound() {
    let mut spec = every(Duration::from_secs(100));
    spec.jitter = Duration::from_secs(30);
    let mut record = Schedule::new("job", 42);
    let t0 = Instant::now();
    let clock = |mono: Instant| Clock {
        mono,
        wall: ts("2027-01-15T12:00:00Z"),
    };
    record.arm(&spec, clock(t0));
    let mut offsets = Vec::new();
    for n in 1..=20u64 {
        let due = record.deadline().unwrap();
        let offset = (due - t0).saturating_sub(Duration::from_secs(100 * n));
        assert!(offset < Duration::from_secs(30), "{offset:?}");
        offsets.push(offset.as_secs());
        assert_eq!(record.on_due(&spec, clock(due), "job"), Some(Fire::Run));
    }
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() > 5, "the draws vary: {offsets:?}");
    // Another seed, other draws.
    let mut other = Schedule::new("job", 43);
    other.arm(&spec, clock(t0));
    let mut first = Schedule::new("job", 42);
    first.arm(&spec, clock(t0));
    assert_ne!(other.deadline(), first.deadline());
}

#[test]
fn a_reload_replans_a_changed_schedule_and_keeps_its_counters() {
    let mut sim = job(every(Duration::from_secs(10)));
    sim.advance(Duration::from_secs(10));
    sim.exit("job", ExitStatus::Code(0));
    assert_eq!(record(&sim).runs, 1);
    let mut changed = sim
        .sup
        .services()
        .get(sim.id("job"))
        .unwrap()
        .spec
        .as_ref()
        .clone();
    changed.schedule = Some(every(Duration::from_secs(60)));
    let web = sim
        .sup
        .services()
        .get(sim.id("web"))
        .unwrap()
        .spec
        .as_ref()
        .clone();
    let specs = vec![changed, web];
    let config = Config {
        graph: crate::config::graph_of(&specs).unwrap(),
        services: specs,
        warnings: Vec::new(),
    };
    let mut out = Vec::new();
    let (plan, _) = sim.sup.reload(config, sim.now, &mut out);
    assert!(
        plan.lines()
            .iter()
            .any(|l| l.contains("job") && l.contains("schedule")),
        "{:?}",
        plan.lines()
    );
    sim.run(Event::Tick);
    assert_eq!(record(&sim).runs, 1, "counters kept");
    assert_eq!(
        record(&sim).deadline(),
        Some(sim.now + Duration::from_secs(60)),
        "planned anew from the new period"
    );
    assert!(spawned(&sim.advance(Duration::from_secs(59))).is_empty());
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(1))),
        [sim.id("job")]
    );
}

#[test]
fn a_run_whose_spawn_fails_counts_with_its_reason() {
    let mut sim = job(every(Duration::from_secs(10)));
    sim.now += Duration::from_secs(10);
    sim.wall = sim.wall.checked_add(SignedDuration::from_secs(10)).unwrap();
    let actions = sim.handle(Event::Tick);
    assert_eq!(spawned(&actions), [sim.id("job")]);
    sim.handle(Event::SpawnFailed {
        id: sim.id("job"),
        error: "No such file or directory".into(),
    });
    let r = record(&sim);
    assert_eq!(r.runs, 1);
    assert_eq!(r.last_exit, None);
    assert_eq!(
        r.last_error.as_deref(),
        Some("cannot start: No such file or directory")
    );
    assert_eq!(r.last_run, Some(ts("2027-01-15T12:00:10Z")));
    // The next run is planned as usual, and a run that starts clears it.
    assert_eq!(
        spawned(&sim.advance(Duration::from_secs(10))),
        [sim.id("job")]
    );
    assert_eq!(record(&sim).last_error, None);
}
