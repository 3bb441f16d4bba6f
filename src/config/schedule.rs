//! Validation of `[schedule]`: when a oneshot runs (a cron expression in a
//! time zone, or a fixed period), and what happens when a run is due while
//! the last one still runs, or was missed. Time zones are resolved here,
//! once, so the supervisor only computes.
//!
//! cron expressions are croner's (5 fields minute first, or 6 fields
//! seconds first; ranges, steps, lists, names, `@daily` and friends), time
//! zones jiff's: an IANA name from the system's zoneinfo (`TZDIR`, else
//! /usr/share/zoneinfo), a POSIX TZ rule, or `UTC`.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use toml::Spanned;

use super::raw::{Value, from_table};

use super::checker::Checker;

/// When a scheduled oneshot runs.
#[derive(Clone)]
pub enum When {
    /// At the times a cron expression matches, in a time zone.
    Cron {
        /// Boxed: a parsed expression is large beside a duration.
        cron: Box<Cron>,
        /// As written.
        text: String,
        tz: TimeZone,
        /// The zone as shown: its IANA name, the rule, or `UTC`.
        tz_name: String,
    },
    /// Every period of elapsed time (monotonic: clock changes do not
    /// move it).
    Every(Duration),
}

impl fmt::Debug for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Cron { text, tz_name, .. } => write!(f, "cron {text:?} in {tz_name}"),
            When::Every(d) => write!(f, "every {d:?}"),
        }
    }
}

impl PartialEq for When {
    fn eq(&self, other: &When) -> bool {
        match (self, other) {
            (
                When::Cron { text, tz_name, .. },
                When::Cron {
                    text: t2,
                    tz_name: z2,
                    ..
                },
            ) => text == t2 && tz_name == z2,
            (When::Every(a), When::Every(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Cron { text, tz_name, .. } => write!(f, "cron \"{text}\" ({tz_name})"),
            When::Every(d) => write!(f, "every {}", super::units::format_duration(*d)),
        }
    }
}

/// A run due while the previous one still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Not run; counted as skipped.
    Skip,
    /// Run once right after the running one ends.
    Queue,
    /// The running one is stopped (stop signal, then SIGKILL after
    /// stop_timeout), then the new one starts.
    Replace,
}

/// Due times that passed unnoticed (the machine slept, the clock jumped
/// forward, the container was paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// They are skipped and counted; the schedule goes on from now.
    Skip,
    /// One run now, however many were missed.
    RunOnce,
}

/// A validated `[schedule]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub when: When,
    /// Also run once at boot.
    pub at_start: bool,
    pub overlap: Overlap,
    /// Each run starts up to this much after its due time, drawn per run.
    pub jitter: Duration,
    pub missed: Missed,
    /// The zone its times are shown in: the cron zone, for `every` the
    /// container's (resolved here: the supervisor makes no syscalls).
    pub shown_in: TimeZone,
}

impl ScheduleSpec {
    /// The next `n` due times after `now` (before jitter), as `corral
    /// check` shows them; an `every` schedule counted from `now`.
    pub fn upcoming(&self, now: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut t = now;
        for _ in 0..n {
            let next = match &self.when {
                When::Cron { cron, tz, .. } => next_cron(cron, tz, t),
                When::Every(d) => jiff::SignedDuration::try_from(*d)
                    .ok()
                    .and_then(|d| t.checked_add(d).ok()),
            };
            let Some(next) = next else { break };
            out.push(next);
            t = next;
        }
        out
    }
}

/// The first time strictly after `after` that `cron` matches in `tz`.
pub fn next_cron(cron: &Cron, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    cron.find_next_occurrence(&after.to_zoned(tz.clone()), false)
        .ok()
        .map(|z| z.timestamp())
}

/// A wall-clock time as RFC 3339 with its offset in `tz`, to the second.
/// (Written out by hand: jiff's strftime costs the binary 60 KB.)
pub fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let offset = z.offset().seconds();
    let (sign, abs) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        z.year(),
        z.month(),
        z.day(),
        z.hour(),
        z.minute(),
        z.second(),
        abs / 3600,
        abs % 3600 / 60
    )
}

/// A due time noticed later than this was missed (`missed` decides): a
/// loaded machine is late by milliseconds, a suspended or paused one by
/// far more.
pub const MISSED_AFTER: Duration = Duration::from_secs(60);

/// `[schedule]` as written.
#[derive(Debug, Default)]
pub struct RawSchedule {
    pub cron: Option<Spanned<String>>,
    pub every: Option<Spanned<Value>>,
    pub at_start: Option<Spanned<bool>>,
    pub timezone: Option<Spanned<String>>,
    pub overlap: Option<Spanned<String>>,
    pub jitter: Option<Spanned<Value>>,
    pub missed: Option<Spanned<String>>,
}

from_table!(RawSchedule {
    cron,
    every,
    at_start,
    timezone,
    overlap,
    jitter,
    missed,
});

/// The zone a schedule without `timezone` uses: the container's (`TZ`,
/// else /etc/localtime), else UTC.
pub fn default_zone() -> (TimeZone, String) {
    match TimeZone::try_system() {
        Ok(tz) => {
            let name = tz
                .iana_name()
                .map(String::from)
                .or_else(|| std::env::var("TZ").ok().filter(|t| !t.is_empty()))
                .unwrap_or_else(|| "the system zone".into());
            (tz, name)
        }
        Err(_) => (TimeZone::UTC, "UTC".into()),
    }
}

/// Parses a cron expression as corral reads it.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| e.to_string().trim_end_matches('.').to_string())
}

/// Validates `[schedule]`; `table` spans it for errors of the whole table.
pub fn schedule(
    c: &mut Checker<'_>,
    table: &Spanned<RawSchedule>,
    now: Timestamp,
) -> Option<ScheduleSpec> {
    let s = table.get_ref();
    let when = match (&s.cron, &s.every) {
        (Some(text), None) => {
            let zone = match &s.timezone {
                None => Some(default_zone()),
                Some(z) => zone(c, z),
            };
            match (parse_cron(text.get_ref()), zone) {
                (Err(e), _) => {
                    c.error(text, format!("schedule.cron = \"{}\": {e}; write 5 fields (minute hour day month weekday, e.g. \"30 3 * * *\"), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly", text.get_ref()));
                    None
                }
                (Ok(_), None) => None,
                (Ok(cron), Some((tz, tz_name))) => {
                    if cron
                        .find_next_occurrence(&now.to_zoned(tz.clone()), false)
                        .is_err()
                    {
                        c.error(text, format!("schedule.cron = \"{}\" never matches a date (such as the 31st of February): fix the day or month", text.get_ref()));
                        None
                    } else {
                        Some(When::Cron {
                            cron: Box::new(cron),
                            text: text.get_ref().clone(),
                            tz,
                            tz_name,
                        })
                    }
                }
            }
        }
        (None, Some(v)) => {
            if let Some(z) = &s.timezone {
                c.error(
                    z,
                    "schedule.timezone applies to cron; an `every` period is elapsed time in any zone",
                );
            }
            let d = c.duration(&Some(v.clone()), "schedule.every", Duration::ZERO);
            if d < Duration::from_secs(1) {
                c.error(v, "schedule.every must be at least 1s");
                None
            } else {
                Some(When::Every(d))
            }
        }
        (Some(_), Some(_)) => {
            c.error(table, "[schedule] has both cron and every: keep one");
            None
        }
        (None, None) => {
            c.error(
                table,
                "[schedule] says neither when nor how often: add cron = \"30 3 * * *\" or every = \"10m\"",
            );
            None
        }
    };
    let overlap = match s.overlap.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "skip")) => Overlap::Skip,
        Some((_, "queue")) => Overlap::Queue,
        Some((_, "replace")) => Overlap::Replace,
        Some((v, other)) => {
            c.error(
                v,
                format!("schedule.overlap = \"{other}\": use \"skip\", \"queue\" or \"replace\""),
            );
            Overlap::Skip
        }
    };
    let missed = match s.missed.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "skip")) => Missed::Skip,
        Some((_, "run-once")) => Missed::RunOnce,
        Some((v, other)) => {
            c.error(
                v,
                format!("schedule.missed = \"{other}\": use \"skip\" or \"run-once\""),
            );
            Missed::Skip
        }
    };
    let jitter = c.duration(&s.jitter, "schedule.jitter", Duration::ZERO);
    if let (Some(j), Some(When::Every(period))) = (&s.jitter, &when)
        && jitter >= *period
    {
        c.error(
            j,
            "schedule.jitter must be shorter than the every period, or runs would pile up",
        );
    }
    let when = when?;
    let shown_in = match &when {
        When::Cron { tz, .. } => tz.clone(),
        When::Every(_) => default_zone().0,
    };
    Some(ScheduleSpec {
        when,
        shown_in,
        at_start: s.at_start.as_ref().is_some_and(|a| *a.get_ref()),
        overlap,
        jitter,
        missed,
    })
}

/// `timezone = "..."`: an IANA name, a POSIX TZ rule, or UTC.
fn zone(c: &mut Checker<'_>, v: &Spanned<String>) -> Option<(TimeZone, String)> {
    let name = v.get_ref();
    if name.eq_ignore_ascii_case("utc") {
        return Some((TimeZone::UTC, "UTC".into()));
    }
    if let Ok(tz) = TimeZone::get(name) {
        return Some((tz, name.clone()));
    }
    // A POSIX rule needs no data: "CET-1CEST,M3.5.0,M10.5.0/3".
    if name.bytes().any(|b| b.is_ascii_digit())
        && let Ok(tz) = TimeZone::posix(name)
    {
        return Some((tz, name.clone()));
    }
    let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".into());
    c.error(
        v,
        format!("schedule.timezone = \"{name}\" is not in {dir} (an image FROM scratch has no zoneinfo): install tzdata, copy /usr/share/zoneinfo/{name} into the image, or write the zone as a POSIX TZ rule such as \"CET-1CEST,M3.5.0,M10.5.0/3\""),
    );
    None
}
