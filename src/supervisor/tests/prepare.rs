//! The Preparing state: steps before each start, their failure as a start
//! failure, a stop or shutdown killing the helper.

use super::*;
use crate::config::prepare::{Owner, Step, Verb};

fn prepared(name: &str) -> ServiceSpec {
    let mut s = spec(name, &[]);
    s.prepare = vec![Step {
        verb: Verb::Mkdir {
            path: "/run/x".into(),
            mode: 0o755,
        },
        owner: Owner::Service,
        line: 3,
    }];
    s
}

fn kill(pid: Pid) -> Action {
    Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGKILL,
    }
}

fn done(sim: &mut Sim, pid: Pid, ok: bool) -> Vec<Action> {
    let id = sim.id("app");
    sim.run(Event::PrepareDone {
        id,
        pid,
        ok,
        reason: "prepare step 1 (mkdir /run/x, app.toml:3): Permission denied".into(),
    })
}

#[test]
fn steps_run_before_each_start_then_the_program() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    let actions = sim.run(Event::Boot);
    let id = sim.id("app");
    assert!(actions.contains(&Action::Prepare(id)), "{actions:?}");
    assert!(spawned(&actions).is_empty(), "no spawn before the steps");
    sim.run(Event::PrepareSpawned { id, pid: 900 });
    let note = sim.sup.status(&[id], sim.now)[0].note.clone();
    assert_eq!(note.as_deref(), Some("running its 1 prepare step(s)"));
    assert_eq!(sim.sup.status(&[id], sim.now)[0].state, "starting");
    let actions = done(&mut sim, 900, true);
    assert_eq!(spawned(&actions), [id]);
    assert!(matches!(sim.state("app"), State::Running { .. }));
    // A restart runs them again.
    let actions = sim.exit("app", ExitStatus::Code(1));
    assert!(spawned(&actions).is_empty());
    let actions = sim.advance(Duration::from_secs(1));
    assert!(actions.contains(&Action::Prepare(id)), "{actions:?}");
}

#[test]
fn a_failed_step_is_a_failed_start_with_its_reason() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::PrepareSpawned { id, pid: 900 });
    let actions = done(&mut sim, 900, false);
    assert!(spawned(&actions).is_empty());
    assert!(
        matches!(sim.state("app"), State::Backoff { .. }),
        "{:?}",
        sim.state("app")
    );
    assert_eq!(sim.sup.services().get(id).unwrap().failures, 1);
    // A stale answer (another pid) changes nothing.
    let actions = done(&mut sim, 901, true);
    assert!(actions.is_empty() && matches!(sim.state("app"), State::Backoff { .. }));
}

#[test]
fn a_required_oneshot_whose_steps_fail_at_boot_stops_the_container() {
    let mut job = prepared("app");
    job.kind = crate::config::probes::Kind::Oneshot {
        timeout: None,
        optional: false,
    };
    let mut sim = Sim::new(vec![job], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::PrepareSpawned { id, pid: 900 });
    done(&mut sim, 900, false);
    match sim.state("app") {
        State::Failed { reason } => assert!(reason.contains("Permission denied"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(sim.sup.is_shutting_down());
}

#[test]
fn a_helper_that_cannot_start_fails_the_start() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::PrepareSpawnFailed {
        id,
        error: "EAGAIN".into(),
    });
    assert!(matches!(sim.state("app"), State::Backoff { .. }));
}

#[test]
fn a_stop_kills_the_steps_once_and_leaves_the_service_down() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::PrepareSpawned { id, pid: 900 });
    let actions = sim.run(Event::StopRequested(vec![id]));
    assert_eq!(actions.iter().filter(|a| **a == kill(900)).count(), 1);
    // Not again on the next event.
    let actions = sim.run(Event::Tick);
    assert!(!actions.contains(&kill(900)));
    let actions = done(&mut sim, 900, false);
    assert!(spawned(&actions).is_empty());
    assert_eq!(*sim.state("app"), State::Stopped);
}

#[test]
fn a_stop_before_the_helper_reported_kills_it_when_it_does() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::StopRequested(vec![id]));
    let actions = sim.run(Event::PrepareSpawned { id, pid: 900 });
    assert!(actions.contains(&kill(900)), "{actions:?}");
    done(&mut sim, 900, true);
    assert_eq!(*sim.state("app"), State::Stopped);
}

#[test]
fn shutdown_during_the_steps_kills_them_and_exits() {
    let mut sim = Sim::new(vec![prepared("app")], false);
    sim.run(Event::Boot);
    let id = sim.id("app");
    sim.run(Event::PrepareSpawned { id, pid: 900 });
    let actions = sim.run(Event::ShutdownRequested);
    assert!(actions.contains(&kill(900)), "{actions:?}");
    let actions = done(&mut sim, 900, false);
    assert!(
        actions.contains(&Action::SignalOrphans(Signal::SIGTERM)),
        "{actions:?}"
    );
    assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(0)]);
}
