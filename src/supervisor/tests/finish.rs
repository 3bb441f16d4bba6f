//! A runit directory's `finish`: run after every exit with runsv's
//! arguments, the restart decided only once it ended, bounded in time.

use super::*;
use crate::config::runit::RunitDir;

fn runit(name: &str) -> ServiceSpec {
    let mut s = spec(name, &[]);
    s.runit = Some(Box::new(RunitDir {
        dir: format!("/etc/service/{name}").into(),
        finish: true,
        ..Default::default()
    }));
    s
}

fn finishes(actions: &[Action]) -> Vec<(i32, i32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Finish { code, signal, .. } => Some((*code, *signal)),
            _ => None,
        })
        .collect()
}

#[test]
fn finish_gets_runsvs_arguments_and_the_restart_waits_for_it() {
    let mut sim = Sim::new(vec![runit("web")], false);
    sim.run(Event::Boot);
    let actions = sim.exit("web", ExitStatus::Code(3));
    assert_eq!(finishes(&actions), [(3, 0)]);
    assert_eq!(sim.state("web").word(), "finishing");
    assert!(spawned(&actions).is_empty());
    sim.run(Event::FinishSpawned {
        id: sid(0),
        pid: 700,
    });
    // Its end, not time, moves the service on: to backoff, then a start.
    sim.run(Event::FinishDone {
        id: sid(0),
        pid: 700,
    });
    assert!(matches!(sim.state("web"), State::Backoff { .. }));
    sim.advance(Duration::from_secs(1));
    assert!(matches!(sim.state("web"), State::Running { .. }));
    // Killed by a signal: -1 and the signal number.
    let actions = sim.exit("web", ExitStatus::Signaled(Signal::SIGKILL));
    assert_eq!(finishes(&actions), [(-1, 9)]);
}

#[test]
fn a_finish_that_hangs_is_killed_and_one_that_cannot_start_is_skipped() {
    let mut sim = Sim::new(vec![runit("web")], false);
    sim.run(Event::Boot);
    sim.exit("web", ExitStatus::Code(1));
    sim.run(Event::FinishSpawned {
        id: sid(0),
        pid: 700,
    });
    let actions = sim.advance(FINISH_TIMEOUT);
    assert!(
        actions.contains(&Action::SignalGroup {
            pgid: 700,
            signal: Signal::SIGKILL
        }),
        "{actions:?}"
    );
    assert_eq!(sim.sup.next_deadline(), None, "killed once, then it waits");
    sim.run(Event::FinishDone {
        id: sid(0),
        pid: 700,
    });
    assert!(matches!(sim.state("web"), State::Backoff { .. }));

    sim.advance(Duration::from_secs(1));
    sim.exit("web", ExitStatus::Code(1));
    sim.run(Event::FinishSpawnFailed {
        id: sid(0),
        error: "ENOEXEC".into(),
    });
    assert!(matches!(sim.state("web"), State::Backoff { .. }));
}

#[test]
fn a_stop_or_start_during_finish_applies_after_it() {
    let mut sim = Sim::new(vec![runit("web")], false);
    sim.run(Event::Boot);
    sim.run(Event::StopRequested(vec![sid(0)]));
    let actions = sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    assert_eq!(
        finishes(&actions),
        [(-1, 15)],
        "finish runs after a stop too"
    );
    sim.run(Event::FinishSpawned {
        id: sid(0),
        pid: 700,
    });
    // Started again while the stop's finish runs: it starts after it.
    sim.run(Event::StartRequested(vec![sid(0)]));
    assert_eq!(sim.state("web").word(), "finishing");
    sim.run(Event::FinishDone {
        id: sid(0),
        pid: 700,
    });
    assert!(matches!(sim.state("web"), State::Running { .. }));

    // Shutdown waits for a finish, and the forced end kills it.
    sim.exit("web", ExitStatus::Code(1));
    sim.run(Event::FinishSpawned {
        id: sid(0),
        pid: 701,
    });
    sim.run(Event::ShutdownRequested);
    assert_eq!(sim.state("web").word(), "finishing");
    let actions = sim.advance(Settings::default().shutdown_budget);
    assert!(
        actions.contains(&Action::SignalGroup {
            pgid: 701,
            signal: Signal::SIGKILL
        }),
        "{actions:?}"
    );
    sim.run(Event::FinishDone {
        id: sid(0),
        pid: 701,
    });
    assert_eq!(sim.state("web"), &State::Stopped);
}
