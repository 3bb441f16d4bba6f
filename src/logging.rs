//! corral's own messages: tracing events formatted as `corral: LEVEL: text`
//! on stderr, one write per line. The level comes from `CORRAL_LOG`
//! (`error`, `warn`, `info`, `debug`, `trace`, or `off`).
//!
//! The subscriber is this file's own: corral has no spans and no fields
//! beyond the message, so tracing-subscriber's registry and formatters
//! would be code in every svctl exec for nothing.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write;

use tracing::field::{Field, Visit};
pub use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the subscriber. `default` applies when `CORRAL_LOG` is unset;
/// an unreadable value falls back to it with a warning, never an error.
pub fn init(default: LevelFilter) {
    let (level, bad) = match std::env::var("CORRAL_LOG") {
        Ok(v) if v.trim().is_empty() => (default, None),
        Ok(v) => match parse_level(&v) {
            Some(level) => (level, None),
            None => (default, Some(v)),
        },
        Err(_) => (default, None),
    };
    let _ = tracing::subscriber::set_global_default(Plain { max: level });
    if let Some(v) = bad {
        tracing::warn!(
            "CORRAL_LOG={v:?} is not a level; use error, warn, info, debug, trace or off"
        );
    }
}

/// Most bytes of corral's own messages held for the event loop; beyond,
/// messages are dropped (and one line says how many).
const CAPTURE_LIMIT: usize = 1024 * 1024;

thread_local! {
    /// While the event loop runs, corral's messages wait here and go out
    /// through the non-blocking stderr sink: a blocked log reader must not
    /// block corral. `None`: write to stderr directly.
    static CAPTURED: RefCell<Option<(Vec<u8>, u64)>> = const { RefCell::new(None) };
}

/// Starts or stops holding messages for the event loop. Stopping writes
/// what is held to stderr.
pub fn capture(on: bool) {
    let held =
        CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), on.then(|| (Vec::new(), 0))));
    if let Some((bytes, _)) = held {
        let _ = std::io::stderr().write_all(&bytes);
    }
}

/// The messages held since the last call.
pub fn take_captured() -> Vec<u8> {
    CAPTURED.with(|c| match &mut *c.borrow_mut() {
        Some((bytes, dropped)) => {
            let mut out = std::mem::take(bytes);
            if *dropped > 0 {
                out.extend_from_slice(format!("corral: warning: {dropped} of corral's own messages dropped: stderr was not read\n").as_bytes());
                *dropped = 0;
            }
            out
        }
        None => Vec::new(),
    })
}

/// The writer tracing formats into: the capture buffer, or stderr.
struct HeldStderr;

impl Write for HeldStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let held = CAPTURED.with(|c| match &mut *c.borrow_mut() {
            Some((bytes, dropped)) => {
                if bytes.len() + buf.len() <= CAPTURE_LIMIT {
                    bytes.extend_from_slice(buf);
                } else {
                    *dropped += 1;
                }
                true
            }
            None => false,
        });
        if held {
            Ok(buf.len())
        } else {
            std::io::stderr().write(buf)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parse_level(text: &str) -> Option<LevelFilter> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "off" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => return None,
    })
}

/// `corral: text` for info, `corral: warning: text` and so on otherwise,
/// for events at `max` or above.
struct Plain {
    max: LevelFilter,
}

impl Subscriber for Plain {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let tag = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        let mut line = Line(format!("corral: {tag}"));
        event.record(&mut line);
        line.0.push('\n');
        // One write per line, so lines never interleave.
        let _ = HeldStderr.write_all(line.0.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's text: the message, then any other field as ` name=value`.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // A message is fmt::Arguments, whose Debug is its text.
        let _ = match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level(" warn "), Some(LevelFilter::WARN));
        assert_eq!(parse_level("loud"), None);
    }
}
