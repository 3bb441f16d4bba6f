//! The first configuration stage: a serde mirror of one service file.
//!
//! Every key is spanned so that the validator (`model.rs`) can report
//! `path:line` for semantic errors, and unknown keys are rejected here so a
//! typo such as `reqiures` never passes silently. Keys whose type is flexible
//! (a user may be a name or a number) stay `toml::Value` and are checked in
//! the model, where the message can say what would have been accepted.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::actions::RawActions;
use super::logcfg::RawLog;
use super::prepare::RawStep;
use super::probes::{RawHealth, RawReady};
use super::schedule::RawSchedule;

/// One `services.d/NAME.toml` file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(rename = "type")]
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

/// Parses one file; the error keeps toml's span so the caller can turn it
/// into a line number.
pub fn parse(text: &str) -> Result<RawService, toml::de::Error> {
    toml::from_str(text)
}
