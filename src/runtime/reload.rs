//! The runtime's half of a reload (`svctl reload`, SIGHUP): read and
//! validate the services directory, refuse with every error and change
//! nothing when it is invalid, else hand both models to the supervisor,
//! which plans and applies (`supervisor::reload`), and answer once the
//! plan is carried out.

use std::time::Instant;

use tracing::{error, info, warn};

use super::Runtime;
use crate::config::Config;
use crate::proto::{ErrorKind, Response};

impl Runtime {
    /// Reads the directory: the new configuration, or the answer that
    /// names every error.
    fn load_for_reload(&self) -> Result<Config, Response> {
        self.source.load().map_err(|errors| {
            let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            lines.push(format!(
                "{} error(s) in {}; nothing was changed",
                errors.len(),
                self.source.dir.display()
            ));
            Response::error(ErrorKind::BadRequest, lines.join("\n"))
        })
    }

    /// `svctl reload [--dry-run]` from control client `client`.
    pub(super) fn reload_for(&mut self, client: u64, dry_run: bool, timeout_ms: u64) {
        let now = Instant::now();
        let refused = (!dry_run).then(|| self.sup.reload_refusal()).flatten();
        let answer = match refused {
            Some(why) => Err(Response::error(
                ErrorKind::Failed,
                format!("reload refused: {why}"),
            )),
            None => self.load_for_reload(),
        };
        let config = match answer {
            Ok(config) => config,
            Err(resp) => {
                if let Some(c) = &mut self.control {
                    c.reply(client, resp, &self.epoll);
                }
                return;
            }
        };
        for w in &config.warnings {
            warn!("{w}");
        }
        if dry_run {
            let mut lines = self.sup.plan_reload(&config).lines();
            lines.push("dry run: nothing was changed".into());
            if let Some(c) = &mut self.control {
                let resp = Response::Ok {
                    services: Vec::new(),
                    message: Some(lines.join("\n")),
                };
                c.reply(client, resp, &self.epoll);
            }
            return;
        }
        let (plan, goals) = self.apply_reload(config, now);
        if let Some(c) = &mut self.control {
            c.add_waiter_saying(client, goals, timeout_ms, now, Some(plan.join("\n")));
        }
    }

    /// SIGHUP without a main command: the same, reported in corral's log.
    pub(super) fn reload_on_hangup(&mut self) {
        if let Some(why) = self.sup.reload_refusal() {
            warn!("SIGHUP: reload refused: {why}");
            return;
        }
        match self.load_for_reload() {
            Err(Response::Error { message, .. }) => {
                for line in message.lines() {
                    error!("SIGHUP: {line}");
                }
            }
            Err(_) => {}
            Ok(config) => {
                for w in &config.warnings {
                    warn!("{w}");
                }
                let (plan, _) = self.apply_reload(config, Instant::now());
                info!("SIGHUP: reloading: {}", plan.join("; "));
            }
        }
    }

    /// Applies a valid configuration; returns the plan's lines and what to
    /// wait for.
    fn apply_reload(
        &mut self,
        config: Config,
        now: Instant,
    ) -> (
        Vec<String>,
        Vec<(crate::supervisor::ServiceId, crate::supervisor::Goal)>,
    ) {
        let mut actions = Vec::new();
        let (plan, goals) = self.sup.reload(config, now, &mut actions);
        let lines = plan.lines();
        self.publish(crate::proto::EventLine {
            event: "reload".into(),
            plan: Some(lines.clone()),
            ..super::event_line()
        });
        for action in actions {
            self.perform(action);
        }
        (lines, goals)
    }
}
