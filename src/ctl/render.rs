//! What svctl prints for people: the status tables and the inspect
//! report. (`--json` prints the protocol's own types.)

use std::borrow::Cow;

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
    // Cells borrow what the answer holds; only numbers and words are made.
    let rows: Vec<Vec<Cow<str>>> = services
        .iter()
        .map(|s| {
            let word = |w: &'static str| Cow::Borrowed(w);
            vec![
                Cow::Borrowed(s.name.as_ref()),
                Cow::Borrowed(s.state.as_ref()),
                match (s.kind.as_ref(), s.ready, s.ready_ms) {
                    ("oneshot", true, _) => word("done"),
                    (_, true, Some(ms)) if ms > 0 => format!("yes {}", human_duration(ms)).into(),
                    (_, true, _) => word("yes"),
                    (_, false, _) if s.state == "running" => word("no"),
                    _ => word("-"),
                },
                Cow::Borrowed(s.health.as_deref().unwrap_or("-")),
                s.pid.map_or(word("-"), |p| p.to_string().into()),
                // Uptime means something only while a process exists.
                match (s.state.as_ref(), s.uptime_ms) {
                    ("running" | "stopping", Some(ms)) => human_duration(ms).into(),
                    _ => word("-"),
                },
                s.restarts.to_string().into(),
                exit_text(s.last_exit).into(),
                // The service's own STATUS= when corral has nothing to add.
                Cow::Borrowed(
                    s.note
                        .as_deref()
                        .or(s.status_text.as_deref())
                        .unwrap_or_default(),
                ),
            ]
        })
        .collect();
    let mut out = columns(&header, &rows);
    // Scheduled jobs: their schedule and runs, in a table of their own.
    let jobs: Vec<Vec<String>> = services
        .iter()
        .filter_map(|s| {
            let j = s.schedule.as_ref()?;
            let dash = || "-".to_string();
            Some(vec![
                s.name.to_string(),
                j.when.clone(),
                match (&j.next_run, j.queued) {
                    (_, true) => "queued".into(),
                    (Some(t), false) => t.clone(),
                    (None, false) => dash(),
                },
                j.last_run.clone().unwrap_or_else(dash),
                match (&j.last_run, &j.last_error) {
                    (None, _) => dash(),
                    (Some(_), Some(_)) => "no start".into(),
                    (Some(_), None) => exit_text(j.last_exit),
                },
                j.last_duration_ms.map_or_else(dash, human_duration),
                j.runs.to_string(),
                j.skipped.to_string(),
            ])
        })
        .collect();
    if !jobs.is_empty() {
        out.push('\n');
        out.push_str(&columns(
            &[
                "SCHEDULED",
                "SCHEDULE",
                "NEXT RUN",
                "LAST RUN",
                "RESULT",
                "TOOK",
                "RUNS",
                "SKIPPED",
            ],
            &jobs,
        ));
    }
    out
}

/// `exit 3`, `SIGTERM`, or `-`.
fn exit_text(e: Option<LastExit>) -> String {
    match e {
        None => "-".into(),
        Some(LastExit::Code(c)) => format!("exit {c}"),
        Some(LastExit::Signal(n)) => nix::sys::signal::Signal::try_from(n)
            .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_string()),
    }
}

/// Left-aligned columns two spaces apart; the last one unpadded. Widths
/// are measured in bytes and padding counts chars, as `{:<w$}` does.
/// Written into one String: a status of 500 services has 4,500 cells.
fn columns<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.as_ref().len());
        }
    }
    let per_line = widths.iter().map(|w| w + 2).sum::<usize>() + 1;
    let mut out = String::with_capacity(per_line * (rows.len() + 1));
    let mut line = |cells: &mut dyn ExactSizeIterator<Item = &str>| {
        let start = out.len();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, &w)) in cells.zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = out.get(start..).map_or(0, |l| l.trim_end().len());
        out.truncate(start + kept);
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(AsRef::as_ref));
    }
    out
}

/// `850ms`, `12s`, `3m04s`, `2h05m`, `3d04h`.
pub(super) fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
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
}
