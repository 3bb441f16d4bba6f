//! The text format's rules on a small snapshot: exact output, escaping,
//! one HELP and TYPE per family before its samples, samples together.

use super::*;

fn web() -> ServiceSample {
    ServiceSample {
        name: "web".into(),
        state: "running",
        up: true,
        healthy: Some(true),
        starts: 3,
        restarts: 2,
        failures: 2,
        start_time: Some(1_764_670_000.25),
        last_exit_code: Some(137),
        log_lines: [10, 4],
        log_dropped: 1,
        log_file_lost: 0,
        schedule: None,
    }
}

fn job() -> ServiceSample {
    ServiceSample {
        name: "backup".into(),
        state: "stopped",
        schedule: Some(ScheduleSample {
            next_run: Some(1_764_700_000.0),
            succeeded: 5,
            failed: 1,
            skipped: 2,
        }),
        ..ServiceSample::default()
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        services: vec![job(), web()],
        orphans_reaped: 7,
        requests: vec![("invalid", 1), ("status", 12)],
        process: Some(ProcessSample {
            resident_bytes: 2_000_000,
            virtual_bytes: 9_000_000,
            cpu_seconds: 0.5,
            start_time: 1_764_660_000.5,
            open_fds: 9,
            max_fds: Some(1024),
        }),
        version: "0.1.0",
    }
}

fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .collect()
}

#[test]
fn each_service_has_its_samples() {
    let text = render(&snapshot());
    assert_eq!(
        lines_of(&text, "corral_service_state")
            .into_iter()
            .filter(|l| l.ends_with(" 1"))
            .collect::<Vec<_>>(),
        [
            "corral_service_state{service=\"backup\",state=\"stopped\"} 1",
            "corral_service_state{service=\"web\",state=\"running\"} 1",
        ]
    );
    assert_eq!(
        lines_of(&text, "corral_service_state").len(),
        2 * STATE_WORDS.len()
    );
    assert_eq!(
        lines_of(&text, "corral_service_healthy"),
        ["corral_service_healthy{service=\"web\"} 1"],
        "only services with [health]"
    );
    assert_eq!(
        lines_of(&text, "corral_service_start_time_seconds"),
        ["corral_service_start_time_seconds{service=\"web\"} 1764670000.25"]
    );
    assert_eq!(
        lines_of(&text, "corral_service_last_exit_code"),
        ["corral_service_last_exit_code{service=\"web\"} 137"]
    );
    assert_eq!(
        lines_of(&text, "corral_log_lines_total"),
        [
            "corral_log_lines_total{service=\"backup\",stream=\"stdout\"} 0",
            "corral_log_lines_total{service=\"backup\",stream=\"stderr\"} 0",
            "corral_log_lines_total{service=\"web\",stream=\"stdout\"} 10",
            "corral_log_lines_total{service=\"web\",stream=\"stderr\"} 4",
        ]
    );
    assert_eq!(
        lines_of(&text, "corral_schedule_runs_total"),
        [
            "corral_schedule_runs_total{service=\"backup\",result=\"success\"} 5",
            "corral_schedule_runs_total{service=\"backup\",result=\"failure\"} 1",
            "corral_schedule_runs_total{service=\"backup\",result=\"skipped\"} 2",
        ]
    );
    assert_eq!(
        lines_of(&text, "corral_schedule_next_run_timestamp_seconds"),
        ["corral_schedule_next_run_timestamp_seconds{service=\"backup\"} 1764700000"]
    );
    assert_eq!(
        lines_of(&text, "corral_control_requests_total"),
        [
            "corral_control_requests_total{verb=\"invalid\"} 1",
            "corral_control_requests_total{verb=\"status\"} 12",
        ]
    );
    assert_eq!(
        lines_of(&text, "corral_build_info"),
        ["corral_build_info{version=\"0.1.0\"} 1"]
    );
    assert_eq!(
        lines_of(&text, "process_cpu_seconds_total"),
        ["process_cpu_seconds_total 0.5"]
    );
}

#[test]
fn families_are_announced_once_and_kept_together() {
    let text = render(&snapshot());
    let mut seen: Vec<&str> = Vec::new();
    let mut current = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!seen.contains(&name), "{name} announced twice");
            seen.push(name);
            current = name;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(name, current, "TYPE right after its HELP");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "a sample of {name} outside its family");
        }
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut t = Text { out: String::new() };
    t.family("x", Type::Gauge, "a \\ b\nc \"q\"");
    t.sample("x", &[("v", "a\"b\\c\nd")], 1u64);
    t.sample("x", &[], f64::NAN);
    t.sample("x", &[], f64::INFINITY);
    t.sample("x", &[], -3i32);
    assert_eq!(
        t.out,
        "# HELP x a \\\\ b\\nc \"q\"\n# TYPE x gauge\nx{v=\"a\\\"b\\\\c\\nd\"} 1\nx NaN\nx +Inf\nx -3\n"
    );
}

#[test]
fn no_process_figures_no_process_families() {
    let snap = Snapshot {
        process: None,
        ..snapshot()
    };
    assert!(!render(&snap).contains("process_"));
}
