//! corral's own process series, read from /proc at each scrape: what
//! Prometheus' client libraries call the process collector.

use nix::unistd::{SysconfVar, sysconf};

use crate::exposition::ProcessSample;

/// The figures as /proc has them now; `None` when /proc is not mounted.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let tick = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    let page = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    let mut p = parse_stat(
        &stat,
        u64::try_from(tick).ok()?,
        u64::try_from(page).ok()?,
        boot_time(&boot)?,
    )?;
    // The directory being listed is one of them.
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1) as u64)
        .unwrap_or(0);
    p.max_fds = max_open_files(&limits);
    Some(p)
}

/// Memory, CPU time and start time from a /proc/PID/stat line; `tick` is
/// the clock-tick rate, `boot` the boot time in unix seconds.
fn parse_stat(stat: &str, tick: u64, page: u64, boot: u64) -> Option<ProcessSample> {
    // The command name may hold spaces and parentheses: fields resume
    // after the last ')', with the state (field 3) first.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = |t: u64| t as f64 / tick.max(1) as f64;
    Some(ProcessSample {
        cpu_seconds: ticks(field(14)?.saturating_add(field(15)?)),
        start_time: boot as f64 + ticks(field(22)?),
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(page),
        open_fds: 0,
        max_fds: None,
    })
}

/// `btime` of /proc/stat: when the machine booted, in unix seconds.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in /proc/PID/limits; `None` when
/// unlimited or absent.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_name_with_spaces_and_parentheses() {
        // Fields 3.. of a real line, the name made awkward.
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 1 0 \
                    1000 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let p = parse_stat(stat, 100, 4096, 1_700_000_000).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.start_time, 1_700_000_010.0);
        assert_eq!(p.virtual_bytes, 12_345_678);
        assert_eq!(p.resident_bytes, 300 * 4096);
        assert_eq!(parse_stat("no parenthesis", 100, 4096, 0), None);
    }

    #[test]
    fn boot_time_and_the_soft_file_limit() {
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1764670000\nprocesses 9\n"),
            Some(1_764_670_000)
        );
        assert_eq!(boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }

    #[test]
    fn this_process_has_figures() {
        let p = sample().expect("/proc is mounted where tests run");
        assert!(p.resident_bytes > 0 && p.open_fds >= 3, "{p:?}");
        assert!(p.start_time > 1.6e9, "{p:?}");
    }
}
