//! The first configuration stage: one service file as written, read from
//! TOML's parse tree.
//!
//! The file is parsed once, into toml's spanned tree (`DeTable`); `shape.rs`
//! checks every key and kind of value on that tree and reports them all, and
//! this module then copies the tree into plain structs whose fields are
//! named as the keys. Every key keeps its span so that the validator
//! (`model.rs`) can report `path:line` for semantic errors. Keys whose type
//! is flexible (a user may be a name or a number) stay a [`Value`] and are
//! checked in the model, where the message can say what would have been
//! accepted.
//!
//! Why not serde's derive: it instantiated a visitor per struct, field type
//! and deserializer, about 200 KiB of the binary for what is a copy of a
//! tree already checked, and it parsed every file a second time. Here each
//! field type has one small conversion ([`FromTree`]), and [`from_table!`]
//! writes a struct's key match.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::actions::RawActions;
use super::logcfg::RawLog;
use super::prepare::RawStep;
use super::probes::{RawHealth, RawReady};
use super::schedule::RawSchedule;

/// One `services.d/NAME.toml` file, as written.
#[derive(Debug, Default)]
pub struct RawService {
    pub command: Option<Spanned<Vec<String>>>,
    pub run: Option<Spanned<String>>,
    pub user: Option<Spanned<Value>>,
    pub group: Option<Spanned<Value>>,
    pub requires: Option<Vec<Spanned<String>>>,
    pub env: Option<Spanned<BTreeMap<String, String>>>,
    pub env_file: Option<Spanned<Vec<String>>>,
    pub env_from_file: Option<Spanned<BTreeMap<String, String>>>,
    pub enabled_env: Option<Spanned<String>>,
    pub user_env: Option<Spanned<String>>,
    pub working_dir: Option<Spanned<String>>,
    pub pidfile: Option<Spanned<String>>,
    pub restart: Option<Spanned<String>>,
    pub restart_delay: Option<Spanned<Value>>,
    pub restart_delay_max: Option<Spanned<Value>>,
    pub restart_reset: Option<Spanned<Value>>,
    pub restart_limit: Option<Spanned<i64>>,
    pub success_exit_codes: Option<Spanned<Vec<i64>>>,
    pub stop_signal: Option<Spanned<Value>>,
    pub stop_timeout: Option<Spanned<Value>>,
    pub enabled: Option<bool>,
    /// `type`.
    pub kind: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Value>>,
    pub optional: Option<Spanned<bool>>,
    pub ready: Option<Spanned<RawReady>>,
    pub health: Option<Spanned<RawHealth>>,
    pub log: Option<Spanned<RawLog>>,
    pub no_new_privs: Option<bool>,
    pub schedule: Option<Spanned<RawSchedule>>,
    pub prepare: Option<Vec<Spanned<RawStep>>>,
    pub actions: Option<Spanned<RawActions>>,
}

/// A value whose kind the model decides on: TOML's own kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A date or time, as written (no key takes one).
    Datetime(String),
    Array(Vec<Value>),
    Table(BTreeMap<String, Value>),
}

impl Value {
    /// The kind, as TOML names it.
    pub fn type_str(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A value that is not what its field takes, or a key no field has. After
/// `shape.rs` has passed the file this does not happen; it is an error all
/// the same, never a panic.
#[derive(Debug)]
pub struct Bad {
    pub span: Range<usize>,
    pub message: String,
}

/// A field's type, read from the parse tree.
pub trait FromTree: Sized {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad>;
}

fn wrong(v: &Spanned<DeValue<'_>>, wanted: &str) -> Bad {
    Bad {
        span: v.span(),
        message: format!("expected {wanted}, not {}", v.get_ref().type_str()),
    }
}

impl FromTree for String {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        v.get_ref()
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| wrong(v, "a string"))
    }
}

impl FromTree for i64 {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        let n = v
            .get_ref()
            .as_integer()
            .ok_or_else(|| wrong(v, "an integer"))?;
        i64::from_str_radix(n.as_str(), n.radix()).map_err(|_| Bad {
            span: v.span(),
            message: format!("the integer {n} does not fit in 64 bits"),
        })
    }
}

impl FromTree for bool {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        v.get_ref()
            .as_bool()
            .ok_or_else(|| wrong(v, "true or false"))
    }
}

impl FromTree for Value {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        Ok(match v.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(_) => Value::Integer(i64::from_tree(v)?),
            DeValue::Float(f) => {
                // As toml reads it: `inf` only where it is written.
                let x: f64 = f.as_str().parse().map_err(|_| wrong(v, "a number"))?;
                if x.is_infinite() && !f.as_str().contains("inf") {
                    return Err(Bad {
                        span: v.span(),
                        message: format!("the number {} is too large", f.as_str()),
                    });
                }
                Value::Float(x)
            }
            DeValue::Boolean(b) => Value::Boolean(*b),
            DeValue::Datetime(d) => Value::Datetime(d.to_string()),
            DeValue::Array(_) => Value::Array(Vec::from_tree(v)?),
            DeValue::Table(_) => Value::Table(BTreeMap::from_tree(v)?),
        })
    }
}

impl<T: FromTree> FromTree for Vec<T> {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        let items = v.get_ref().as_array().ok_or_else(|| wrong(v, "an array"))?;
        items.iter().map(T::from_tree).collect()
    }
}

impl<T: FromTree> FromTree for BTreeMap<String, T> {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        let table = v.get_ref().as_table().ok_or_else(|| wrong(v, "a table"))?;
        table
            .iter()
            .map(|(k, v)| Ok((k.get_ref().to_string(), T::from_tree(v)?)))
            .collect()
    }
}

impl<T: FromTree> FromTree for Spanned<T> {
    fn from_tree(v: &Spanned<DeValue<'_>>) -> Result<Self, Bad> {
        Ok(Spanned::new(v.span(), T::from_tree(v)?))
    }
}

/// The table of `v`, for a struct's `from_tree`.
pub fn table_of<'a, 'i>(v: &'a Spanned<DeValue<'i>>) -> Result<&'a DeTable<'i>, Bad> {
    v.get_ref().as_table().ok_or_else(|| wrong(v, "a table"))
}

/// A key no field of the struct has.
pub fn unknown(key: &Spanned<std::borrow::Cow<'_, str>>, keys: &[&str]) -> Bad {
    Bad {
        span: key.span(),
        message: format!(
            "unknown key `{}`: expected one of {}",
            key.get_ref(),
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a struct of `Option` fields (and `Default`) from a table: each
/// key fills the field of its name (`field = "key"` where they differ),
/// and `KEYS` lists them, for the test that holds them equal to
/// `shape.rs`'s tables.
macro_rules! from_table {
    ($ty:ident { $($field:ident $(= $key:literal)?),* $(,)? }) => {
        impl $ty {
            pub const KEYS: &'static [&'static str] =
                &[$($crate::config::raw::key_name!($field $(, $key)?)),*];

            pub fn from_table(table: &toml::de::DeTable<'_>) -> Result<Self, $crate::config::raw::Bad> {
                let mut raw = Self::default();
                for (key, value) in table.iter() {
                    let name: &str = key.get_ref();
                    $(
                        if name == $crate::config::raw::key_name!($field $(, $key)?) {
                            raw.$field = Some($crate::config::raw::FromTree::from_tree(value)?);
                            continue;
                        }
                    )*
                    return Err($crate::config::raw::unknown(key, Self::KEYS));
                }
                Ok(raw)
            }
        }

        impl $crate::config::raw::FromTree for $ty {
            fn from_tree(
                v: &toml::Spanned<toml::de::DeValue<'_>>,
            ) -> Result<Self, $crate::config::raw::Bad> {
                Self::from_table($crate::config::raw::table_of(v)?)
            }
        }
    };
}
pub(crate) use from_table;

/// A field's key: its name, or the name given.
macro_rules! key_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $key:literal) => {
        $key
    };
}
pub(crate) use key_name;

from_table!(RawService {
    command,
    run,
    user,
    group,
    requires,
    env,
    env_file,
    env_from_file,
    enabled_env,
    user_env,
    working_dir,
    pidfile,
    restart,
    restart_delay,
    restart_delay_max,
    restart_reset,
    restart_limit,
    success_exit_codes,
    stop_signal,
    stop_timeout,
    enabled,
    kind = "type",
    timeout,
    optional,
    ready,
    health,
    log,
    no_new_privs,
    schedule,
    prepare,
    actions,
});

/// Parses one file into its spanned tree; the error keeps toml's span so
/// the caller can turn it into a line number.
pub fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, toml::de::Error> {
    DeTable::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<RawService, Bad> {
        RawService::from_table(parse(text).unwrap().get_ref())
    }

    #[test]
    fn every_kind_of_field_is_read_with_its_span() {
        let raw = read(
            "command = [\"/bin/x\", \"-f\"]\nuser = 7\nrestart_delay = 1.5\nenabled = false\ntype = \"oneshot\"\nenv = { A = \"1\" }\nsuccess_exit_codes = [0, 0x2]\n[ready]\nfd = 3\n[[prepare]]\ncopy = { from = \"a\", to = \"b\" }\n[actions.a]\nrun = \"x\"\n",
        )
        .unwrap();
        let command = raw.command.unwrap();
        assert_eq!(command.get_ref(), &["/bin/x", "-f"]);
        assert_eq!(command.span(), 10..26);
        assert_eq!(raw.user.unwrap().get_ref(), &Value::Integer(7));
        assert_eq!(raw.restart_delay.unwrap().get_ref(), &Value::Float(1.5));
        assert_eq!(raw.enabled, Some(false));
        assert_eq!(raw.kind.unwrap().get_ref(), "oneshot");
        assert_eq!(raw.env.unwrap().get_ref()["A"], "1");
        assert_eq!(raw.success_exit_codes.unwrap().get_ref(), &[0, 2]);
        assert_eq!(
            raw.ready.unwrap().get_ref().fd.as_ref().unwrap().get_ref(),
            &3
        );
        let steps = raw.prepare.unwrap();
        let copy = steps[0].get_ref().copy.as_ref().unwrap().get_ref();
        assert_eq!((copy.from.as_str(), copy.to.as_str()), ("a", "b"));
        assert!(raw.actions.unwrap().get_ref()["a"].get_ref().run.is_some());
    }

    #[test]
    fn a_wrong_kind_or_key_is_an_error_not_a_panic() {
        let e = read("run = 5\n").unwrap_err();
        assert_eq!(e.message, "expected a string, not integer");
        assert_eq!(e.span, 6..7);
        let e = read("bogus = 1\n").unwrap_err();
        assert!(
            e.message
                .starts_with("unknown key `bogus`: expected one of `command`, `run`")
        );
        let e = read("restart_limit = 99999999999999999999\n").unwrap_err();
        assert_eq!(
            e.message,
            "the integer 99999999999999999999 does not fit in 64 bits"
        );
        let e = read("[[prepare]]\ncopy = { from = \"a\" }\n").unwrap_err();
        assert_eq!(
            e.message,
            "both `from` and `to` are needed: { from = \"...\", to = \"...\" }"
        );
    }
}
