//! Value parsers shared by the service files and the environment variables:
//! durations (`"250ms"`, `"5s"`, `"2m"`, `"1h"`, or a number of seconds) and
//! signal names (`"SIGTERM"`, `"TERM"`, `"term"`, or a number).

use std::time::Duration;

use nix::sys::signal::Signal;

/// The longest duration corral accepts anywhere: a day. Longer values are
/// always typos (`"5000m"`), and keeping them small keeps `Instant`
/// arithmetic far away from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `"100ms"`, `"1.5s"`, `"10s"`, `"2m"`, `"1h"`, or a bare number of
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. \"500ms\", \"5s\", \"2m\""))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}`: use ms, s, m or h"
            ));
        }
    };
    seconds_to_duration(value * scale, text)
}

/// A duration as a service file would write it: `500ms`, `30s`, `10m`,
/// `2h`, or the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if !ms.is_multiple_of(1000) => format!("{ms}ms"),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ => format!("{}s", ms / 1000),
    }
}

/// Checks a number of seconds against the accepted range.
pub fn seconds_to_duration(secs: f64, shown: &str) -> Result<Duration, String> {
    if !secs.is_finite() {
        return Err(format!(
            "duration `{shown}` is not a finite number of seconds: write e.g. \"5s\""
        ));
    }
    if secs < 0.0 {
        return Err(format!("duration `{shown}` must not be negative"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("duration `{shown}` is too long: at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size: `"10MiB"`, `"512KiB"`, `"1GiB"` (K, M, G and their
/// KB/KiB spellings are all powers of 1024) or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{text}` is not a size: write e.g. \"10MiB\", \"512KiB\" or a number of bytes")
    })?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit `{}` in `{text}`: use KiB, MiB or GiB",
                unit.trim()
            ));
        }
    };
    n.checked_mul(scale)
        .filter(|&b| b <= 1 << 40)
        .ok_or_else(|| format!("size `{text}` is too large: at most 1TiB"))
}

/// Parses a signal by name (with or without `SIG`, any case) or number.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("{n} is not a signal number"));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| {
        format!("unknown signal `{text}`: use a name such as SIGTERM, SIGINT, SIGQUIT, SIGHUP")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(
            parse_duration("-1s")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            parse_duration("5 days")
                .unwrap_err()
                .contains("unknown duration unit")
        );
        assert!(parse_duration("25h").unwrap_err().contains("too long"));
        assert!(parse_duration("").is_err());
        assert!(
            seconds_to_duration(-1.0, "-1")
                .unwrap_err()
                .contains("negative")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(
            parse_size("10 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("-1").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999G").unwrap_err().contains("too large"));
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("term"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("QUIT"), Ok(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(
            parse_signal("SIGFOO")
                .unwrap_err()
                .contains("unknown signal")
        );
        assert!(parse_signal("99").is_err());
    }
}
