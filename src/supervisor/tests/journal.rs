//! What `svctl events` is told: every observable change, once, and only
//! while someone listens.

use super::*;

fn published(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(e) => Some(format!(
                "{} {}{}",
                e.service.as_deref().unwrap_or("-"),
                e.event,
                match (&e.from, &e.to) {
                    (Some(f), Some(t)) => format!(" {f}->{t}"),
                    _ => String::new(),
                }
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_crash_and_its_restart_are_told_in_order() {
    let mut sim = Sim::new(vec![spec("web", &[])], false);
    // Nobody listens: nothing is published.
    assert!(published(&sim.run(Event::Boot)).is_empty());
    sim.sup.set_listening(true);
    let actions = sim.exit("web", ExitStatus::Code(1));
    assert_eq!(
        published(&actions),
        ["web exited", "web state running->backoff"]
    );
    let exit = actions.iter().find_map(|a| match a {
        Action::Publish(e) if e.event == "exited" => e.exit,
        _ => None,
    });
    assert_eq!(exit, Some(crate::proto::LastExit::Code(1)));
    let actions = sim.advance(Duration::from_secs(1));
    assert_eq!(
        published(&actions),
        [
            "web state backoff->starting",
            "web started",
            "web state starting->running",
            "web ready"
        ]
    );
    // Nothing changed: nothing told.
    assert!(published(&sim.run(Event::Tick)).is_empty());
    sim.sup.set_listening(false);
    assert!(published(&sim.exit("web", ExitStatus::Code(1))).is_empty());
}

#[test]
fn added_and_removed_services_are_told() {
    let mut sim = Sim::new(vec![spec("a", &[])], false);
    sim.run(Event::Boot);
    sim.sup.set_listening(true);
    let config = |specs: Vec<ServiceSpec>| Config {
        graph: crate::config::graph_of(&specs).unwrap(),
        services: specs,
        warnings: Vec::new(),
    };
    let mut out = Vec::new();
    sim.sup
        .reload(config(vec![spec("b", &[])]), sim.now, &mut out);
    let mut seen = Vec::new();
    for a in out {
        if let Action::Spawn(id) = a {
            seen.extend(sim.run(Event::Spawned { id, pid: 700 }));
        }
    }
    seen.extend(sim.exit("a", ExitStatus::Signaled(Signal::SIGTERM)));
    let told = published(&seen);
    assert!(told.iter().any(|t| t.starts_with("b added")), "{told:?}");
    assert!(told.contains(&"a removed".to_string()), "{told:?}");
}
