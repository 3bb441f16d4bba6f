//! What svctl prints for people: the status tables and the inspect
//! report. (`--json` prints the protocol's own types.)

use super::status::Row;
use crate::proto::{ActionInfo, Inspect, LastExit};

/// The status table, and one of scheduled jobs below it when there are.
pub(super) fn table(services: &[Row]) -> String {
    let header = [
        "NAME",
        "STATE",
        "READY",
        "HEALTH",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "NOTE",
    ];
    // Every cell written into one buffer: no String, Vec or Cow per cell
    // (they were half of svctl's rendering of 100 services).
    let mut cells = Cells::new(header.len(), services.len());
    for s in services {
        cells.text(&s.name);
        cells.text(&s.state);
        match (s.kind.as_ref(), s.ready, s.ready_ms) {
            ("oneshot", true, _) => cells.text("done"),
            (_, true, Some(ms)) if ms > 0 => cells.with(|t| {
                t.push_str("yes ");
                write_duration(t, ms);
            }),
            (_, true, _) => cells.text("yes"),
            (_, false, _) if s.state == "running" => cells.text("no"),
            _ => cells.text("-"),
        }
        cells.text(s.health.as_deref().unwrap_or("-"));
        match s.pid {
            Some(p) => cells.with(|t| write_number(t, i64::from(p))),
            None => cells.text("-"),
        }
        // Uptime means something only while a process exists.
        match (s.state.as_ref(), s.uptime_ms) {
            ("running" | "stopping", Some(ms)) => cells.with(|t| write_duration(t, ms)),
            _ => cells.text("-"),
        }
        cells.with(|t| write_count(t, u64::from(s.restarts)));
        cells.with(|t| write_exit(t, s.last_exit));
        // The service's own STATUS= when corral has nothing to add.
        cells.text(
            s.note
                .as_deref()
                .or(s.status_text.as_deref())
                .unwrap_or_default(),
        );
    }
    let mut out = cells.columns(&header);
    // Scheduled jobs: their schedule and runs, in a table of their own.
    let jobs = [
        "SCHEDULED",
        "SCHEDULE",
        "NEXT RUN",
        "LAST RUN",
        "RESULT",
        "TOOK",
        "RUNS",
        "SKIPPED",
    ];
    let mut scheduled = Cells::new(jobs.len(), 0);
    for s in services {
        let Some(j) = s.schedule.as_ref() else {
            continue;
        };
        scheduled.text(&s.name);
        scheduled.text(&j.when);
        scheduled.text(match (&j.next_run, j.queued) {
            (_, true) => "queued",
            (Some(t), false) => t,
            (None, false) => "-",
        });
        scheduled.text(j.last_run.as_deref().unwrap_or("-"));
        match (&j.last_run, &j.last_error) {
            (None, _) => scheduled.text("-"),
            (Some(_), Some(_)) => scheduled.text("no start"),
            (Some(_), None) => scheduled.with(|t| write_exit(t, j.last_exit)),
        }
        match j.last_duration_ms {
            Some(ms) => scheduled.with(|t| write_duration(t, ms)),
            None => scheduled.text("-"),
        }
        scheduled.with(|t| write_count(t, j.runs));
        scheduled.with(|t| write_count(t, j.skipped));
    }
    if !scheduled.is_empty() {
        out.push('\n');
        out.push_str(&scheduled.columns(&jobs));
    }
    out
}

/// `exit 3`, `SIGTERM`, `signal 40`, or `-`.
fn write_exit(out: &mut String, e: Option<LastExit>) {
    match e {
        None => out.push('-'),
        Some(LastExit::Code(c)) => {
            out.push_str("exit ");
            write_number(out, i64::from(c));
        }
        Some(LastExit::Signal(n)) => match nix::sys::signal::Signal::try_from(n) {
            Ok(s) => out.push_str(s.as_str()),
            Err(_) => {
                out.push_str("signal ");
                write_number(out, i64::from(n));
            }
        },
    }
}

/// A number in decimal, without the formatting machinery.
fn write_number(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_count(out, n.unsigned_abs());
}

/// `write_number` of a count.
fn write_count(out: &mut String, n: u64) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = n;
    while at > 0 {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

/// A table's cells, row by row, all in one buffer.
struct Cells {
    text: String,
    /// Where each cell ends in `text`.
    ends: Vec<usize>,
}

impl Cells {
    fn new(width: usize, rows: usize) -> Cells {
        Cells {
            text: String::with_capacity(rows * 64),
            ends: Vec::with_capacity(rows * width),
        }
    }

    fn text(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// A cell that `write` writes.
    fn with(&mut self, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        self.ends.push(self.text.len());
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Laid out under `header`.
    fn columns(&self, header: &[&str]) -> String {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let cells: Vec<&str> = starts
            .zip(&self.ends)
            .map(|(a, &b)| self.text.get(a..b).unwrap_or_default())
            .collect();
        debug_assert_eq!(cells.len() % header.len().max(1), 0, "whole rows");
        layout(header, &cells)
    }
}

/// `columns` of rows held each in its own Vec.
fn columns<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut cells: Vec<&str> = Vec::with_capacity(rows.len() * header.len());
    for row in rows {
        let row = row.iter().map(AsRef::as_ref).chain(std::iter::repeat(""));
        cells.extend(row.take(header.len()));
    }
    layout(header, &cells)
}

/// Left-aligned columns two spaces apart; the last one unpadded. Widths
/// are measured in bytes and padding counts chars, as `{:<w$}` does.
/// `cells` holds the rows one after another, each as wide as `header`.
/// Written into one String: a status of 500 services has 4,500 cells.
fn layout(header: &[&str], cells: &[&str]) -> String {
    let width = header.len().max(1);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in cells.chunks(width) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let per_line = widths.iter().map(|w| w + 2).sum::<usize>() + 1;
    let mut out = String::with_capacity(per_line * (cells.len() / width + 1));
    let mut line = |row: &[&str]| {
        let start = out.len();
        let last = row.len().saturating_sub(1);
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                spaces(&mut out, w.saturating_sub(cell.chars().count()) + 2);
            }
        }
        let kept = out.get(start..).map_or(0, |l| l.trim_end().len());
        out.truncate(start + kept);
        out.push('\n');
    };
    line(header);
    for row in cells.chunks(width) {
        line(row);
    }
    out
}

/// `n` spaces, a block at a time rather than a char at a time.
fn spaces(out: &mut String, n: usize) {
    const BLOCK: &str = "                                ";
    let mut left = n;
    while left > 0 {
        let k = left.min(BLOCK.len());
        out.push_str(BLOCK.get(..k).unwrap_or_default());
        left -= k;
    }
}

/// `850ms`, `12s`, `3m04s`, `2h05m`, `3d04h`.
pub(super) fn human_duration(ms: u64) -> String {
    let mut out = String::new();
    write_duration(&mut out, ms);
    out
}

/// `human_duration`, written into `out`.
fn write_duration(out: &mut String, ms: u64) {
    let s = ms / 1000;
    let (big, small, units) = match s {
        0 => (ms, None, ("ms", "")),
        1..60 => (s, None, ("s", "")),
        60..3600 => (s / 60, Some(s % 60), ("m", "s")),
        3600..86400 => (s / 3600, Some(s % 3600 / 60), ("h", "m")),
        _ => (s / 86400, Some(s % 86400 / 3600), ("d", "h")),
    };
    write_count(out, big);
    out.push_str(units.0);
    if let Some(n) = small {
        if n < 10 {
            out.push('0');
        }
        write_count(out, n);
        out.push_str(units.1);
    }
}

/// `svctl inspect`: the images, base first, then the run, then the
/// services' table.
pub(super) fn inspect_report(doc: &Inspect) -> String {
    let mut out = String::new();
    if doc.images.is_empty() {
        out.push_str("images     none described (no files in /etc/corral/metadata.d)\n");
    }
    for (i, m) in doc.images.iter().enumerate() {
        let label = if i + 1 == doc.images.len() {
            "image"
        } else {
            "from"
        };
        let mut line = format!("{label:<10} {}", m.name);
        if let Some(v) = &m.version {
            line.push_str(&format!(" {v}"));
        }
        let facts: Vec<String> = [
            m.build_time.as_ref().map(|t| format!("built {t}")),
            m.gitref.as_ref().map(|g| format!("git {g}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !facts.is_empty() {
            line.push_str(&format!(" ({})", facts.join(", ")));
        }
        line.push_str(&format!("  [{}]\n", m.file));
        out.push_str(&line);
        for detail in [&m.description, &m.url].into_iter().flatten() {
            out.push_str(&format!("{:<10} {detail}\n", ""));
        }
        for (k, v) in &m.labels {
            out.push_str(&format!("{:<10} {k} = {v}\n", ""));
        }
    }
    let r = &doc.runtime;
    out.push_str(&format!(
        "corral     {}, started {} (up {})\n",
        r.corral_version,
        r.corral_started,
        human_duration(r.uptime_ms)
    ));
    out.push_str(&match (&r.first_started, r.starts) {
        (Some(first), Some(n)) => format!("container  first started {first}, {n} start(s)\n"),
        _ => "container  starts not counted (the state directory is not writable)\n".to_string(),
    });
    out.push_str(&format!("host       {}\n", r.hostname));
    if let Some(main) = &r.main_command {
        out.push_str(&format!("main       {}\n", main.join(" ")));
    }
    out.push('\n');
    let rows: Vec<Row> = doc.services.iter().map(Row::from).collect();
    out.push_str(&table(&rows));
    // Who each runs as and what can be done with it.
    let mut first = true;
    for s in &doc.services {
        let mut facts = Vec::new();
        if let Some(u) = &s.user {
            facts.push(format!("runs as {u}"));
        }
        if !s.actions.is_empty() {
            facts.push(format!("actions {}", s.actions.join(", ")));
        }
        if facts.is_empty() {
            continue;
        }
        if std::mem::take(&mut first) {
            out.push('\n');
        }
        out.push_str(&format!("{}: {}\n", s.name, facts.join("; ")));
    }
    out
}

/// `svctl actions`: one row per action.
pub(super) fn actions_table(actions: &[ActionInfo]) -> String {
    let header = [
        "SERVICE",
        "ACTION",
        "DOES",
        "WHEN",
        "TIMEOUT",
        "DESCRIPTION",
    ];
    let rows: Vec<Vec<String>> = actions
        .iter()
        .map(|a| {
            vec![
                a.service.clone(),
                if a.running {
                    format!("{} (running)", a.name)
                } else {
                    a.name.clone()
                },
                a.kind.clone(),
                a.when.clone(),
                a.timeout_ms.map_or("-".into(), human_duration),
                a.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    columns(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::super::status::Row;
    use super::*;

    /// How columns were laid out before they were written in place: the
    /// reference the faster version must match byte for byte.
    fn reference(header: &[&str], rows: &[Vec<String>]) -> String {
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    l.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(header);
        for row in rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&cells);
        }
        out
    }

    #[test]
    fn columns_match_the_padding_of_format() {
        let header = ["NAME", "STATE", "NOTE"];
        let rows: Vec<Vec<String>> = [
            ["db", "running", ""],
            ["ünïcödé-näme", "stopped", "waits for db"],
            ["x", "", "trailing  "],
            ["a-much-longer-service-name", "backoff", "restarts in 2s"],
        ]
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
        assert_eq!(columns(&header, &rows), reference(&header, &rows));
        assert_eq!(
            columns(&header, &[] as &[Vec<String>]),
            "NAME  STATE  NOTE\n"
        );
    }

    /// Services in every state the table words differently, and a job.
    fn sample() -> Vec<crate::proto::ServiceStatus> {
        use crate::proto::{ScheduleStatus, ServiceStatus};
        let base = ServiceStatus {
            name: "web".into(),
            state: "running".into(),
            pid: Some(42),
            uptime_ms: Some(3_725_000),
            restarts: 12,
            last_exit: Some(LastExit::Signal(9)),
            enabled: true,
            user: None,
            note: None,
            kind: "longrun".into(),
            ready: true,
            ready_ms: Some(1500),
            health: Some("healthy".into()),
            health_output: None,
            status_text: Some("serving".into()),
            dropped_lines: 0,
            file_lost_lines: 0,
            schedule: None,
            actions: vec![],
        };
        let setup = ServiceStatus {
            name: "setup".into(),
            state: "exited".into(),
            pid: None,
            uptime_ms: Some(5),
            restarts: 0,
            last_exit: Some(LastExit::Code(0)),
            kind: "oneshot".into(),
            ready: true,
            ready_ms: None,
            health: None,
            status_text: None,
            ..base.clone()
        };
        let db = ServiceStatus {
            name: "dätabase".into(),
            state: "backoff".into(),
            pid: None,
            uptime_ms: None,
            restarts: 3,
            last_exit: Some(LastExit::Code(-2)),
            ready: false,
            ready_ms: None,
            health: None,
            note: Some("restarts in 2s".into()),
            status_text: None,
            ..base.clone()
        };
        let starting = ServiceStatus {
            name: "cache".into(),
            state: "running".into(),
            pid: Some(2_000_000),
            uptime_ms: Some(850),
            restarts: 0,
            last_exit: Some(LastExit::Signal(77)),
            ready: false,
            ready_ms: Some(0),
            health: None,
            status_text: None,
            ..base.clone()
        };
        let job = ServiceStatus {
            name: "backup".into(),
            state: "stopped".into(),
            pid: None,
            uptime_ms: None,
            restarts: 0,
            last_exit: None,
            kind: "oneshot".into(),
            ready: false,
            ready_ms: None,
            health: None,
            status_text: None,
            schedule: Some(ScheduleStatus {
                when: "cron \"30 3 * * *\"".into(),
                next_run: Some("2026-12-05T03:30:00Z".into()),
                last_run: Some("2026-12-04T03:30:00Z".into()),
                last_exit: Some(LastExit::Code(1)),
                last_duration_ms: Some(90_061_000),
                last_error: None,
                runs: 18_446_744_073_709_551_615,
                skipped: 7,
                queued: false,
            }),
            ..base.clone()
        };
        let queued = ServiceStatus {
            name: "report".into(),
            schedule: Some(ScheduleStatus {
                when: "every 10m".into(),
                next_run: None,
                last_run: None,
                last_exit: None,
                last_duration_ms: None,
                last_error: None,
                runs: 0,
                skipped: 0,
                queued: true,
            }),
            ..job.clone()
        };
        vec![base, setup, db, starting, job, queued]
    }

    #[test]
    fn the_status_table_reads_as_it_always_did() {
        let services = sample();
        let rows: Vec<Row> = services.iter().map(Row::from).collect();
        assert_eq!(table(&rows), GOLDEN);
        // And svctl status --names-style callers see the same through
        // columns() of owned rows.
        assert_eq!(
            columns(&["A", "B"], &[vec!["x"], vec!["y", "z", "extra"]]),
            "A  B\nx\ny  z\n"
        );
    }

    #[test]
    fn numbers_and_durations_are_written_as_format_writes_them() {
        for n in [0, 1, -1, 9, 10, -10, 99, 100, 12_345, i64::MIN, i64::MAX] {
            let mut out = String::new();
            write_number(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        write_count(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
        // The formula the durations had, with format!.
        let reference = |ms: u64| {
            let s = ms / 1000;
            match s {
                0 => format!("{ms}ms"),
                1..60 => format!("{s}s"),
                60..3600 => format!("{}m{:02}s", s / 60, s % 60),
                3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
                _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
            }
        };
        for ms in [
            0,
            1,
            999,
            1000,
            59_999,
            60_000,
            61_000,
            184_000,
            3_599_999,
            3_600_000,
            3_660_000,
            86_399_999,
            86_400_000,
            90_061_000,
            u64::MAX,
        ] {
            assert_eq!(human_duration(ms), reference(ms), "{ms}");
        }
    }

    /// The table as it was written cell by cell with format! (captured
    /// from that version): the arena must not change a byte.
    const GOLDEN: &str = "NAME       STATE    READY   HEALTH   PID      UPTIME  RESTARTS  LAST EXIT  NOTE\n\
web        running  yes 1s  healthy  42       1h02m   12        SIGKILL    serving\n\
setup      exited   done    -        -        -       0         exit 0\n\
dätabase   backoff  -       -        -        -       3         exit -2    restarts in 2s\n\
cache      running  no      -        2000000  850ms   0         signal 77\n\
backup     stopped  -       -        -        -       0         -\n\
report     stopped  -       -        -        -       0         -\n\
\n\
SCHEDULED  SCHEDULE           NEXT RUN              LAST RUN              RESULT  TOOK   RUNS                  SKIPPED\n\
backup     cron \"30 3 * * *\"  2026-12-05T03:30:00Z  2026-12-04T03:30:00Z  exit 1  1d01h  18446744073709551615  7\n\
report     every 10m          queued                -                     -       -      0                     0\n\
";
}
