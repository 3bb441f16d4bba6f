//! Error collection while validating one service file: every problem is
//! recorded with its line and validation goes on, so one run reports all.

use std::time::Duration;

use toml::Spanned;

use super::raw::Value;

use super::units::{parse_duration, seconds_to_duration};
use super::{ConfigError, Source};

/// Collects the errors of one file while validating it.
pub struct Checker<'a> {
    pub source: &'a Source,
    pub errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    pub fn new(source: &'a Source) -> Checker<'a> {
        Checker {
            source,
            errors: Vec::new(),
        }
    }

    /// Records `message` at the line where `span` starts.
    pub fn error<T>(&mut self, span: &Spanned<T>, message: impl Into<String>) {
        let line = self.source.line_of(span.span().start);
        self.errors.push(self.source.error(Some(line), message));
    }

    /// A duration key: a string with a unit or a number of seconds.
    pub fn duration(
        &mut self,
        value: &Option<Spanned<Value>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = value else { return default };
        let parsed = match v.get_ref() {
            Value::String(s) => parse_duration(s),
            Value::Integer(n) => seconds_to_duration(*n as f64, &n.to_string()),
            Value::Float(f) => seconds_to_duration(*f, &f.to_string()),
            other => Err(format!(
                "must be a duration such as \"5s\", not a {}",
                other.type_str()
            )),
        };
        parsed.unwrap_or_else(|e| {
            self.error(v, format!("{key}: {e}"));
            default
        })
    }
}
