//! The runtime's side of `svctl action`: starting an action's command as a
//! helper, streaming its output to the svctl that asked (holding the
//! action's pipes while that svctl is behind, so nothing is lost), and the
//! last answer. Whether a run may start and when it is killed is the
//! supervisor's (`supervisor::actions`).

use crate::config::actions::Does;
use crate::proto::{ErrorKind, Response};
use crate::supervisor::{ActionOutcome, Ending, ServiceId};

use super::Runtime;
use super::helpers::ActionRun;

/// Output an action's svctl may leave unread before corral stops reading
/// the action's pipes (the action then waits on its writes).
const TAP_LIMIT: usize = 256 * 1024;

/// The exit code of an action that ran out of time, as timeout(1) has it.
pub const EXIT_TIMED_OUT: i32 = 124;

impl Runtime {
    /// Starts run `run` of action `name` of service `id`; its output goes
    /// to the log and to `client`.
    pub(super) fn start_action(
        &mut self,
        run: u64,
        client: u64,
        id: ServiceId,
        name: &str,
        args: &[String],
    ) -> Result<i32, String> {
        let service = self
            .sup
            .services()
            .get(id)
            .ok_or("the service is gone (reloaded away)")?;
        let spec = &service.spec;
        let action = spec
            .action(name)
            .ok_or_else(|| format!("{} has no action `{name}`", spec.name))?;
        let credentials = match &action.does {
            Does::Command { credentials, .. } => credentials.as_ref(),
            Does::Signal { .. } => None,
        };
        let argv = action
            .argv(args)
            .ok_or_else(|| format!("{}/{name} sends a signal; it has no command", spec.name))?;
        let label = format!("{}/{name}", spec.name);
        let env = vec![
            ("CORRAL_SERVICE".to_string(), spec.name.clone()),
            ("CORRAL_ACTION".to_string(), name.to_string()),
        ];
        let pid = self.helpers.start_action(
            id,
            spec,
            ActionRun {
                run,
                argv: &argv,
                credentials,
                env,
                label,
            },
            &mut self.output,
            &self.epoll,
        )?;
        self.action_clients.insert(run, client);
        Ok(pid)
    }

    /// Sends what actions printed to the svctl of each, and holds the
    /// pipes of an action whose svctl is behind (resumed once it caught
    /// up: this runs on every turn of the loop).
    pub(super) fn forward_taps(&mut self) {
        let Some(control) = &mut self.control else {
            return;
        };
        for t in self.output.take_taps() {
            if let Some(&client) = self.action_clients.get(&t.tap) {
                control.stream(client, t.stream, &t.bytes, &self.epoll);
            }
        }
        for (&run, &client) in &self.action_clients {
            let behind = control.unsent(client).is_some_and(|n| n > TAP_LIMIT);
            self.output.hold(run, behind, &self.epoll);
        }
    }

    /// An action request is over: the last of its output, then its answer.
    pub(super) fn action_done(&mut self, client: u64, outcome: ActionOutcome) {
        if let ActionOutcome::Exited { run, .. } = &outcome {
            // Its output came before its exit: send all that is there.
            self.output.read_tap(*run, &self.epoll);
            self.forward_taps();
            self.action_clients.remove(run);
        }
        let ran = match &outcome {
            ActionOutcome::Exited { label, status, .. } => {
                Some((label.clone(), status.as_exit_code()))
            }
            ActionOutcome::Signalled { message } => {
                Some((message.split(':').next().unwrap_or_default().to_string(), 0))
            }
            ActionOutcome::Refused { .. } | ActionOutcome::NotStarted { .. } => None,
        };
        if let Some((label, code)) = ran
            && let Some((service, action)) = label.split_once('/')
        {
            self.publish(crate::proto::EventLine {
                service: Some(service.to_string()),
                event: "action".into(),
                action: Some(action.to_string()),
                code: Some(code),
                ..super::event_line()
            });
        }
        let response = match outcome {
            ActionOutcome::Refused {
                message,
                bad_request,
            } => Response::error(
                if bad_request {
                    ErrorKind::BadRequest
                } else {
                    ErrorKind::Failed
                },
                message,
            ),
            ActionOutcome::NotStarted { message } => Response::error(ErrorKind::Failed, message),
            ActionOutcome::Signalled { message } => Response::Exited {
                code: 0,
                message: Some(message),
            },
            ActionOutcome::Exited {
                label,
                status,
                timeout,
                ending,
                ..
            } => match ending {
                Some(Ending::TimedOut) => Response::Exited {
                    code: EXIT_TIMED_OUT,
                    message: Some(format!(
                        "{label}: timed out after {}s ({status})",
                        timeout.as_secs_f64()
                    )),
                },
                Some(Ending::Shutdown) => Response::Exited {
                    code: status.as_exit_code(),
                    message: Some(format!("{label}: ended by corral's shutdown ({status})")),
                },
                None => Response::Exited {
                    code: status.as_exit_code(),
                    // A plain exit code speaks for itself; a signal does not.
                    message: matches!(status, crate::supervisor::ExitStatus::Signaled(_))
                        .then(|| format!("{label}: {status}")),
                },
            },
        };
        if let Some(control) = &mut self.control {
            control.end_stream(client, response, &self.epoll);
        }
    }
}
