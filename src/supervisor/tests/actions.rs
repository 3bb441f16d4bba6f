//! Actions without processes: who may run, one run at a time, the time
//! limit as a deadline, signal actions, shutdown, and removal by reload
//! waiting for a run.

use super::*;
use crate::config::actions::{ActionSpec, DEFAULT_TIMEOUT, Does, When};

fn command(name: &str, when: When) -> ActionSpec {
    ActionSpec {
        name: name.into(),
        description: None,
        does: Does::Command {
            argv: vec!["/bin/true".into()],
            credentials: None,
        },
        timeout: DEFAULT_TIMEOUT,
        when,
    }
}

fn signal(name: &str, group: bool) -> ActionSpec {
    ActionSpec {
        name: name.into(),
        description: None,
        does: Does::Signal {
            signal: Signal::SIGHUP,
            group,
        },
        timeout: DEFAULT_TIMEOUT,
        when: When::Running,
    }
}

/// `web` with a `validate` (while running), `update` (any time) and
/// `reload` (SIGHUP) action, booted and running.
fn web() -> Sim {
    let mut s = spec("web", &[]);
    s.actions = vec![
        command("validate", When::Running),
        command("update", When::Any),
        signal("reload", false),
        signal("reload-all", true),
    ];
    let mut sim = Sim::new(vec![s], false);
    sim.run(Event::Boot);
    sim
}

fn ask(sim: &mut Sim, client: u64, name: &str, args: &[&str]) -> Vec<Action> {
    let id = sim.id("web");
    sim.run(Event::ActionRequested(ActionRequest {
        client,
        id,
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }))
}

/// The run number of the StartAction among `actions`.
fn started(actions: &[Action]) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::StartAction { run, .. } => Some(*run),
        _ => None,
    })
}

fn done(actions: &[Action]) -> Vec<(u64, ActionOutcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ActionDone { client, outcome } => Some((*client, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn refusal(actions: &[Action]) -> (String, bool) {
    match done(actions).as_slice() {
        [
            (
                _,
                ActionOutcome::Refused {
                    message,
                    bad_request,
                },
            ),
        ] => (message.clone(), *bad_request),
        other => panic!("not one refusal: {other:?}"),
    }
}

#[test]
fn a_command_runs_with_its_arguments_and_its_exit_reaches_the_client() {
    let mut sim = web();
    let actions = ask(&mut sim, 7, "validate", &["--strict"]);
    assert!(actions.iter().any(|a| matches!(a,
        Action::StartAction { client: 7, name, args, .. } if name == "validate" && args == &["--strict"])));
    let run = started(&actions).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    sim.now += Duration::from_millis(300);
    let actions = sim.run(Event::Reaped {
        pid: 500,
        status: ExitStatus::Code(3),
    });
    match done(&actions).as_slice() {
        [
            (
                7,
                ActionOutcome::Exited {
                    status: ExitStatus::Code(3),
                    ending: None,
                    label,
                    ..
                },
            ),
        ] => assert_eq!(label, "web/validate"),
        other => panic!("{other:?}"),
    }
    // The service itself is untouched.
    assert!(matches!(sim.state("web"), State::Running { .. }));
    assert!(sim.sup.runs.is_empty());
}

#[test]
fn a_second_run_of_the_same_action_is_refused_another_action_is_not() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 1, "validate", &[])).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    let (message, bad) = refusal(&ask(&mut sim, 2, "validate", &[]));
    assert!(
        message.contains("web/validate is already running (pid 500"),
        "{message}"
    );
    assert!(!bad);
    assert!(started(&ask(&mut sim, 3, "update", &[])).is_some());
    // Once it ended, it may run again.
    sim.run(Event::Reaped {
        pid: 500,
        status: ExitStatus::Code(0),
    });
    assert!(started(&ask(&mut sim, 4, "validate", &[])).is_some());
}

#[test]
fn when_running_is_refused_while_the_service_is_down_when_any_is_not() {
    let mut sim = web();
    sim.run(Event::StopRequested(vec![sim.id("web")]));
    sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    assert_eq!(*sim.state("web"), State::Stopped);
    let (message, bad) = refusal(&ask(&mut sim, 1, "validate", &[]));
    assert!(!bad);
    assert!(
        message.contains("web is not running (stopped)") && message.contains("when = \"any\""),
        "{message}"
    );
    assert!(started(&ask(&mut sim, 2, "update", &[])).is_some());
    let (message, _) = refusal(&ask(&mut sim, 3, "reload", &[]));
    assert!(message.contains("signals its process"), "{message}");
}

#[test]
fn unknown_actions_and_arguments_to_a_signal_are_bad_requests() {
    let mut sim = web();
    let (message, bad) = refusal(&ask(&mut sim, 1, "backup", &[]));
    assert!(bad);
    assert_eq!(
        message,
        "web has no action `backup` (its actions: validate, update, reload, reload-all)"
    );
    let (message, bad) = refusal(&ask(&mut sim, 1, "reload", &["now"]));
    assert!(bad && message.contains("takes no arguments"), "{message}");
}

#[test]
fn a_signal_action_signals_the_main_process_or_its_group() {
    let mut sim = web();
    let pid = sim.pid("web");
    let actions = ask(&mut sim, 1, "reload", &[]);
    assert!(actions.contains(&Action::Signal {
        pid,
        signal: Signal::SIGHUP
    }));
    assert!(matches!(done(&actions).as_slice(),
        [(1, ActionOutcome::Signalled { message })] if message.contains("sent SIGHUP to web")));
    let actions = ask(&mut sim, 1, "reload-all", &[]);
    assert!(actions.contains(&Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGHUP
    }));
    assert!(started(&actions).is_none());
}

#[test]
fn the_time_limit_is_a_deadline_term_then_kill() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 1, "validate", &[])).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    assert_eq!(sim.sup.next_deadline(), Some(sim.now + DEFAULT_TIMEOUT));
    let actions = sim.advance(DEFAULT_TIMEOUT);
    assert!(actions.contains(&term(500)), "{actions:?}");
    assert_eq!(sim.sup.next_deadline(), Some(sim.now + KILL_AFTER));
    let actions = sim.advance(KILL_AFTER);
    assert!(actions.contains(&Action::SignalGroup {
        pgid: 500,
        signal: Signal::SIGKILL
    }));
    // Nothing is due until the reaper answers; then the client hears why.
    assert_eq!(sim.sup.next_deadline(), None);
    let actions = sim.run(Event::Reaped {
        pid: 500,
        status: ExitStatus::Signaled(Signal::SIGKILL),
    });
    assert!(matches!(
        done(&actions).as_slice(),
        [(
            1,
            ActionOutcome::Exited {
                ending: Some(Ending::TimedOut),
                ..
            }
        )]
    ));
}

#[test]
fn a_failed_spawn_answers_the_client() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 9, "validate", &[])).unwrap();
    let actions = sim.run(Event::ActionSpawnFailed {
        run,
        error: "cannot execute /bin/true: ENOENT".into(),
    });
    assert!(matches!(done(&actions).as_slice(),
        [(9, ActionOutcome::NotStarted { message })] if message.contains("ENOENT")));
    assert!(sim.sup.runs.is_empty());
}

#[test]
fn shutdown_ends_running_actions_and_waits_for_them() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 1, "validate", &[])).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    let actions = sim.run(Event::ShutdownRequested);
    assert!(actions.contains(&term(500)), "{actions:?}");
    // No new runs now.
    let (message, _) = refusal(&ask(&mut sim, 2, "update", &[]));
    assert!(message.contains("shutting down"), "{message}");
    // The service is down, but the action still runs: no sweep yet.
    let actions = sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SignalOrphans(_))),
        "{actions:?}"
    );
    let actions = sim.run(Event::Reaped {
        pid: 500,
        status: ExitStatus::Signaled(Signal::SIGTERM),
    });
    assert!(matches!(
        done(&actions).as_slice(),
        [(
            1,
            ActionOutcome::Exited {
                ending: Some(Ending::Shutdown),
                ..
            }
        )]
    ));
    assert!(actions.contains(&Action::SignalOrphans(Signal::SIGTERM)));
}

#[test]
fn an_action_that_ignores_term_at_shutdown_is_killed_within_the_budget() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 1, "validate", &[])).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    sim.run(Event::ShutdownRequested);
    sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    let actions = sim.advance(KILL_AFTER);
    assert!(
        actions.contains(&Action::SignalGroup {
            pgid: 500,
            signal: Signal::SIGKILL
        }),
        "{actions:?}"
    );
}

#[test]
fn a_removed_service_stays_until_its_action_ends() {
    let mut sim = web();
    let run = started(&ask(&mut sim, 1, "update", &[])).unwrap();
    sim.run(Event::ActionSpawned { run, pid: 500 });
    let mut out = Vec::new();
    let empty = Config {
        services: Vec::new(),
        graph: crate::config::graph_of(&[]).unwrap(),
        warnings: Vec::new(),
    };
    sim.sup.reload(empty, sim.now, &mut out);
    sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    assert!(sim.sup.lookup("web").is_some(), "removed under its action");
    let actions = sim.run(Event::Reaped {
        pid: 500,
        status: ExitStatus::Code(0),
    });
    assert!(actions.contains(&Action::Unregister(sid(0))), "{actions:?}");
    assert!(sim.sup.lookup("web").is_none());
}
