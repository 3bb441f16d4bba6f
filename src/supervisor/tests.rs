//! Supervisor transitions as scripts of events, without processes.
use super::*;
use crate::config::{Backoff, RestartPolicy, Source};
use std::path::PathBuf;

/// The id of the `i`-th service of a configuration loaded at once: slot
/// `i`, generation 0.
fn sid(i: u32) -> ServiceId {
    ServiceId {
        slot: i,
        generation: 0,
    }
}

fn spec(name: &str, requires: &[&str]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        source: Source::new(PathBuf::from(format!("{name}.toml")), ""),
        argv: vec!["/bin/true".into()],
        credentials: None,
        env: Vec::new(),
        env_unset: Vec::new(),
        env_files: Vec::new(),
        env_from_files: Vec::new(),
        enabled_env: None,
        user_env: None,
        working_dir: None,
        pidfile: None,
        requires: requires.iter().map(|r| (r.to_string(), 1)).collect(),
        restart: RestartPolicy::Always,
        backoff: Backoff {
            limit: Some(2),
            ..Backoff::default()
        },
        success_exit_codes: vec![0],
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(5),
        enabled: true,
        kind: crate::config::probes::Kind::Longrun,
        ready: None,
        health: None,
        log: crate::logs::LogSpec::default(),
        no_new_privs: true,
        schedule: None,
        actions: Vec::new(),
        prepare: Vec::new(),
        runit: None,
        log_pipe: None,
    }
}

/// A supervisor plus a clock and a pid counter, so tests read as
/// scripts of events.
struct Sim {
    sup: Supervisor,
    now: Instant,
    /// The wall clock: moves with `now`, unless a test steps it.
    wall: jiff::Timestamp,
    next_pid: Pid,
}

impl Sim {
    fn new(specs: Vec<ServiceSpec>, has_main: bool) -> Sim {
        let graph = crate::config::graph_of(&specs).unwrap();
        let now = Instant::now();
        let config = Config {
            services: specs,
            graph,
            warnings: Vec::new(),
        };
        // A fixed date, so calendars in tests do not depend on today.
        let wall: jiff::Timestamp = "2027-01-15T12:00:00Z".parse().unwrap();
        Sim {
            sup: Supervisor::new(config, has_main, Settings::default(), now, wall),
            now,
            wall,
            next_pid: 100,
        }
    }

    fn id(&self, name: &str) -> ServiceId {
        self.sup.lookup(name).unwrap()
    }

    fn state(&self, name: &str) -> &State {
        &self.sup.services().get(self.id(name)).unwrap().state
    }

    fn pid(&self, name: &str) -> Pid {
        self.state(name).pid().unwrap()
    }

    fn handle(&mut self, e: Event) -> Vec<Action> {
        self.sup.handle(e, self.now, self.wall)
    }

    /// Handles `e` and answers every Spawn like a runtime whose spawns
    /// succeed; returns all actions seen.
    fn run(&mut self, e: Event) -> Vec<Action> {
        let mut queue = vec![e];
        let mut seen = Vec::new();
        while let Some(e) = queue.pop() {
            for a in self.handle(e) {
                match &a {
                    Action::Spawn(id) => {
                        self.next_pid += 1;
                        queue.insert(
                            0,
                            Event::Spawned {
                                id: *id,
                                pid: self.next_pid,
                            },
                        );
                    }
                    Action::SpawnMain => {
                        self.next_pid += 1;
                        queue.insert(0, Event::MainSpawned { pid: self.next_pid });
                    }
                    _ => {}
                }
                seen.push(a);
            }
        }
        seen
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.wall = self
            .wall
            .checked_add(jiff::SignedDuration::try_from(d).unwrap())
            .unwrap();
        self.run(Event::Tick)
    }

    fn exit(&mut self, name: &str, status: ExitStatus) -> Vec<Action> {
        let pid = self.pid(name);
        self.run(Event::Reaped { pid, status })
    }
}

fn spawned(actions: &[Action]) -> Vec<ServiceId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn(id) => Some(*id),
            _ => None,
        })
        .collect()
}

fn term(pid: Pid) -> Action {
    Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGTERM,
    }
}

#[test]
fn boot_starts_in_dependency_order_and_skips_disabled() {
    let mut off = spec("off", &[]);
    off.enabled = false;
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[]), off], false);
    let actions = sim.run(Event::Boot);
    assert_eq!(spawned(&actions), vec![sim.id("db"), sim.id("app")]);
    assert!(matches!(sim.state("app"), State::Running { .. }));
    assert_eq!(sim.state("off"), &State::Stopped);
}

#[test]
fn dependent_waits_while_requirement_is_not_running() {
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
    let db = sim.id("db");
    // Boot without answering the spawn: app must wait.
    let actions = sim.handle(Event::Boot);
    assert_eq!(spawned(&actions), vec![db]);
    assert_eq!(sim.state("app"), &State::Starting);
    let note = sim.sup.status(&[sim.id("app")], sim.now)[0].note.clone();
    assert_eq!(note.as_deref(), Some("waiting for db"));
    // A second event before the answer must not spawn db twice.
    assert!(spawned(&sim.handle(Event::Tick)).is_empty());
    let actions = sim.run(Event::Spawned { id: db, pid: 5 });
    assert_eq!(spawned(&actions), vec![sim.id("app")]);
}

#[test]
fn crash_backs_off_then_restarts_and_budget_ends_in_failed() {
    let mut sim = Sim::new(vec![spec("svc", &[])], false);
    sim.run(Event::Boot);
    let pid = sim.pid("svc");
    let actions = sim.exit("svc", ExitStatus::Code(1));
    // Leftovers of the process group are killed.
    assert!(actions.contains(&Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGKILL
    }));
    let State::Backoff { until } = *sim.state("svc") else {
        panic!("{:?}", sim.state("svc"))
    };
    assert_eq!(until - sim.now, Duration::from_millis(100));
    assert_eq!(sim.sup.next_deadline(), Some(until));
    // Not before the deadline.
    assert!(spawned(&sim.advance(Duration::from_millis(99))).is_empty());
    assert_eq!(
        spawned(&sim.advance(Duration::from_millis(1))),
        vec![sid(0)]
    );
    assert_eq!(sim.sup.services().get(sid(0)).unwrap().restarts, 1);
    // Second quick failure: 200 ms.
    sim.exit("svc", ExitStatus::Code(1));
    assert!(
        matches!(sim.state("svc"), State::Backoff { until } if *until - sim.now == Duration::from_millis(200))
    );
    sim.advance(Duration::from_millis(200));
    // Third: the budget of 2 restarts is spent.
    sim.exit("svc", ExitStatus::Signaled(Signal::SIGSEGV));
    let State::Failed { reason } = sim.state("svc") else {
        panic!("{:?}", sim.state("svc"))
    };
    assert!(reason.contains("3 quick exits"), "{reason}");
    assert_eq!(sim.sup.next_deadline(), None);
    // svctl start resets the budget.
    let actions = sim.run(Event::StartRequested(vec![sid(0)]));
    assert_eq!(spawned(&actions), vec![sid(0)]);
    assert_eq!(sim.sup.services().get(sid(0)).unwrap().failures, 0);
}

#[test]
fn restart_policies() {
    let mut never = spec("never", &[]);
    never.restart = RestartPolicy::Never;
    let mut onf = spec("onf", &[]);
    onf.restart = RestartPolicy::OnFailure;
    let mut sim = Sim::new(vec![never, onf], false);
    sim.run(Event::Boot);
    sim.exit("never", ExitStatus::Code(1));
    assert_eq!(sim.state("never"), &State::Exited);
    sim.exit("onf", ExitStatus::Code(0));
    assert_eq!(sim.state("onf"), &State::Exited);
    assert_eq!(
        sim.sup.services().get(sid(1)).unwrap().last_exit,
        Some(ExitStatus::Code(0))
    );
}

#[test]
fn success_exit_codes_decide_what_on_failure_restarts() {
    // supervisord's `exitcodes = 0,2` with `autorestart = unexpected`.
    let mut two = spec("two", &[]);
    two.restart = RestartPolicy::OnFailure;
    two.success_exit_codes = vec![0, 2];
    // A list without 0 makes 0 a failure, as supervisord's does.
    let mut not_zero = spec("not_zero", &[]);
    not_zero.restart = RestartPolicy::OnFailure;
    not_zero.success_exit_codes = vec![3];
    let mut sim = Sim::new(vec![two, not_zero], false);
    sim.run(Event::Boot);
    sim.exit("two", ExitStatus::Code(2));
    assert_eq!(sim.state("two"), &State::Exited);
    assert_eq!(sim.sup.services().get(sid(0)).unwrap().failures_total, 0);
    sim.exit("not_zero", ExitStatus::Code(0));
    assert!(matches!(sim.state("not_zero"), State::Backoff { .. }));
    assert_eq!(sim.sup.services().get(sid(1)).unwrap().failures_total, 1);
    assert_eq!(
        spawned(&sim.advance(Duration::from_millis(100))),
        vec![sid(1)]
    );
    sim.exit("not_zero", ExitStatus::Code(3));
    assert_eq!(sim.state("not_zero"), &State::Exited);
    // A death by signal is never a success, whatever the list.
    let mut sim = Sim::new(
        vec![ServiceSpec {
            restart: RestartPolicy::OnFailure,
            success_exit_codes: vec![0, 143],
            ..spec("sig", &[])
        }],
        false,
    );
    sim.run(Event::Boot);
    sim.exit("sig", ExitStatus::Signaled(Signal::SIGTERM));
    assert!(matches!(sim.state("sig"), State::Backoff { .. }));
}

#[test]
fn spawn_failure_counts_against_the_budget() {
    let mut sim = Sim::new(vec![spec("svc", &[])], false);
    sim.handle(Event::Boot);
    sim.handle(Event::SpawnFailed {
        id: sid(0),
        error: "No such file".into(),
    });
    assert!(matches!(sim.state("svc"), State::Backoff { .. }));
    let mut never = spec("n", &[]);
    never.restart = RestartPolicy::Never;
    let mut sim = Sim::new(vec![never], false);
    sim.handle(Event::Boot);
    sim.handle(Event::SpawnFailed {
        id: sid(0),
        error: "No such file".into(),
    });
    assert!(matches!(sim.state("n"), State::Failed { reason } if reason.contains("No such file")));
}

#[test]
fn stop_escalates_to_sigkill_after_stop_timeout() {
    let mut sim = Sim::new(vec![spec("svc", &[])], false);
    sim.run(Event::Boot);
    let pid = sim.pid("svc");
    let actions = sim.run(Event::StopRequested(vec![sid(0)]));
    assert_eq!(actions.first(), Some(&term(pid)));
    assert!(sim.advance(Duration::from_millis(4999)).is_empty());
    let actions = sim.advance(Duration::from_millis(1));
    assert_eq!(
        actions,
        vec![Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL
        }]
    );
    sim.run(Event::Reaped {
        pid,
        status: ExitStatus::Signaled(Signal::SIGKILL),
    });
    assert_eq!(sim.state("svc"), &State::Stopped);
    assert_eq!(sim.sup.progress(sid(0), Goal::Down), Progress::Reached);
}

#[test]
fn stop_takes_dependents_down_first_and_start_brings_requirements() {
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
    sim.run(Event::Boot);
    let (app, db) = (sim.pid("app"), sim.pid("db"));
    let actions = sim.run(Event::StopRequested(vec![sim.id("db")]));
    assert!(actions.contains(&term(app)));
    assert!(
        !actions.contains(&term(db)),
        "db must wait for app: {actions:?}"
    );
    let actions = sim.exit("app", ExitStatus::Code(0));
    assert!(actions.contains(&term(db)));
    sim.exit("db", ExitStatus::Code(0));
    assert_eq!(sim.state("app"), &State::Stopped);
    // Starting app brings db back first.
    let actions = sim.run(Event::StartRequested(vec![sim.id("app")]));
    assert_eq!(spawned(&actions), vec![sim.id("db"), sim.id("app")]);
}

#[test]
fn restart_stops_and_starts_only_that_service() {
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
    sim.run(Event::Boot);
    let (app, db) = (sim.pid("app"), sim.pid("db"));
    let before = sim.sup.services().get(sim.id("db")).unwrap().starts;
    let goal = Goal::Up {
        starts_before: before,
    };
    let actions = sim.run(Event::RestartRequested(vec![sim.id("db")]));
    assert!(actions.contains(&term(db)) && !actions.contains(&term(app)));
    assert_eq!(sim.sup.progress(sim.id("db"), goal), Progress::Pending);
    let actions = sim.exit("db", ExitStatus::Code(0));
    assert_eq!(spawned(&actions), vec![sim.id("db")]);
    assert_eq!(sim.sup.progress(sim.id("db"), goal), Progress::Reached);
    assert_eq!(sim.pid("app"), app);
    assert_eq!(sim.sup.services().get(sim.id("db")).unwrap().restarts, 1);
}

#[test]
fn shutdown_stops_in_reverse_order_then_orphans_then_exits_clean() {
    let mut sim = Sim::new(
        vec![spec("app", &["db"]), spec("db", &[]), spec("cron", &[])],
        false,
    );
    sim.run(Event::Boot);
    let (app, db, cron) = (sim.pid("app"), sim.pid("db"), sim.pid("cron"));
    let actions = sim.run(Event::SignalReceived(Signal::SIGTERM));
    // Independent services stop in parallel; db waits for app.
    assert!(actions.contains(&term(app)) && actions.contains(&term(cron)));
    assert!(!actions.contains(&term(db)));
    sim.exit("cron", ExitStatus::Signaled(Signal::SIGTERM));
    assert_eq!(
        sim.state("cron"),
        &State::Stopped,
        "no restart during shutdown"
    );
    assert!(sim.exit("app", ExitStatus::Code(0)).contains(&term(db)));
    let actions = sim.exit("db", ExitStatus::Code(0));
    assert!(actions.contains(&Action::SignalOrphans(Signal::SIGTERM)));
    assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(0)]);
    // Nothing after exit.
    assert!(sim.run(Event::Boot).is_empty());
}

#[test]
fn shutdown_budget_and_second_signal_force_sigkill_and_exit_unclean() {
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], false);
    sim.run(Event::Boot);
    let (app, db) = (sim.pid("app"), sim.pid("db"));
    sim.run(Event::ShutdownRequested);
    let kill = |pid| Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGKILL,
    };
    let actions = sim.run(Event::SignalReceived(Signal::SIGINT));
    assert!(
        actions.contains(&kill(app)) && actions.contains(&kill(db)),
        "{actions:?}"
    );
    sim.exit("app", ExitStatus::Signaled(Signal::SIGKILL));
    let actions = sim.exit("db", ExitStatus::Signaled(Signal::SIGKILL));
    assert!(actions.contains(&Action::SignalOrphans(Signal::SIGKILL)));
    assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(EXIT_UNCLEAN)]);

    // The budget alone: 8 s minus the 500 ms left for orphans.
    let mut sim = Sim::new(vec![spec("stuck", &[])], false);
    sim.run(Event::Boot);
    let pid = sim.pid("stuck");
    sim.run(Event::SignalReceived(Signal::SIGTERM));
    // stop_timeout (5 s) comes first...
    assert_eq!(sim.advance(Duration::from_secs(5)), vec![kill(pid)]);
    // ...a process that survives SIGKILL is given up at the budget.
    assert_eq!(
        sim.sup.next_deadline(),
        Some(sim.now + Duration::from_millis(2500))
    );
    sim.advance(Duration::from_millis(2500));
    sim.exit("stuck", ExitStatus::Signaled(Signal::SIGKILL));
    assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(EXIT_UNCLEAN)]);
}

#[test]
fn unreapable_process_does_not_hold_shutdown_past_the_budget() {
    let mut sim = Sim::new(vec![spec("frozen", &[])], false);
    sim.run(Event::Boot);
    let pid = sim.pid("frozen");
    let start = sim.now;
    sim.run(Event::SignalReceived(Signal::SIGTERM));
    sim.advance(Duration::from_secs(5));
    // The budget for services runs out: SIGKILL to what is left...
    let actions = sim.advance(Duration::from_millis(2500));
    assert!(
        actions.contains(&Action::SignalGroup {
            pgid: pid,
            signal: Signal::SIGKILL
        }),
        "{actions:?}"
    );
    // ...and the next deadline is the end of the budget, not now (the old
    // busy loop: a deadline in the past that no tick handled).
    let budget_end = start + Duration::from_secs(8);
    assert_eq!(sim.sup.next_deadline(), Some(budget_end));
    // Never reaped: corral sweeps once more and exits at the budget.
    sim.now = budget_end;
    let actions = sim.run(Event::Tick);
    assert_eq!(
        actions,
        vec![
            Action::SignalOrphans(Signal::SIGKILL),
            Action::Exit(EXIT_UNCLEAN)
        ]
    );
    assert_eq!(sim.state("frozen"), &State::Stopped);
}

#[test]
fn orphans_get_sigkill_after_grace_and_corral_gives_up_eventually() {
    let mut sim = Sim::new(vec![], false);
    sim.run(Event::Boot);
    // What supervises corral hears that it stops (NOTIFY_SOCKET).
    assert_eq!(
        sim.run(Event::SignalReceived(Signal::SIGTERM)),
        vec![
            Action::Announce("STOPPING=1\nSTATUS=shutting down".into()),
            Action::SignalOrphans(Signal::SIGTERM)
        ]
    );
    assert_eq!(
        sim.advance(Duration::from_millis(500)),
        vec![Action::SignalOrphans(Signal::SIGKILL)]
    );
    assert_eq!(sim.advance(Duration::from_secs(1)), vec![Action::Exit(0)]);
}

#[test]
fn main_command_gets_signals_and_its_exit_ends_corral_with_its_code() {
    let mut sim = Sim::new(vec![spec("db", &[])], true);
    let actions = sim.run(Event::Boot);
    // The main command starts after the services.
    let pos = |a: &Action| actions.iter().position(|x| x == a);
    assert!(
        pos(&Action::Spawn(sid(0))) < pos(&Action::SpawnMain) && pos(&Action::SpawnMain).is_some()
    );
    let main = sim.next_pid;
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        assert_eq!(
            sim.run(Event::SignalReceived(s)),
            vec![Action::Signal {
                pid: main,
                signal: s
            }]
        );
    }
    let db = sim.pid("db");
    let actions = sim.run(Event::Reaped {
        pid: main,
        status: ExitStatus::Signaled(Signal::SIGTERM),
    });
    assert!(actions.contains(&term(db)));
    sim.exit("db", ExitStatus::Code(0));
    assert_eq!(sim.run(Event::NoChildren), vec![Action::Exit(143)]);
}

#[test]
fn main_waits_for_services_but_not_for_dead_ends() {
    let mut sim = Sim::new(vec![spec("app", &["db"]), spec("db", &[])], true);
    let actions = sim.handle(Event::Boot);
    assert!(!actions.contains(&Action::SpawnMain));
    // db cannot be executed and its policy gives up: app is blocked
    // for good, so the main command may start.
    let mut never = spec("db", &[]);
    never.restart = RestartPolicy::Never;
    let mut sim = Sim::new(vec![spec("app", &["db"]), never], true);
    sim.handle(Event::Boot);
    let actions = sim.handle(Event::SpawnFailed {
        id: sim.id("db"),
        error: "ENOENT".into(),
    });
    assert!(actions.contains(&Action::SpawnMain), "{actions:?}");
}

#[test]
fn main_that_cannot_run_exits_with_its_code() {
    let mut sim = Sim::new(vec![], true);
    assert_eq!(
        sim.handle(Event::Boot),
        vec![
            Action::Announce("READY=1\nSTATUS=no services to start".into()),
            Action::SpawnMain
        ]
    );
    let actions = sim.handle(Event::MainSpawnFailed { code: 127 });
    assert_eq!(
        actions,
        vec![
            Action::Announce("STOPPING=1\nSTATUS=shutting down".into()),
            Action::SignalOrphans(Signal::SIGTERM)
        ]
    );
    assert_eq!(sim.handle(Event::NoChildren), vec![Action::Exit(127)]);
}

#[test]
fn orphan_exits_and_unknown_pids_change_nothing() {
    let mut sim = Sim::new(vec![spec("db", &[])], false);
    sim.run(Event::Boot);
    let before = sim.state("db").clone();
    let actions = sim.run(Event::Reaped {
        pid: 99999,
        status: ExitStatus::Code(0),
    });
    assert!(actions.is_empty());
    assert_eq!(sim.state("db"), &before);
    assert!(sim.run(Event::NoChildren).is_empty());
}

#[test]
fn signal_request_reaches_main_processes_only_of_running_services() {
    let mut sim = Sim::new(vec![spec("a", &[]), spec("b", &[])], false);
    sim.run(Event::Boot);
    let a = sim.pid("a");
    sim.run(Event::StopRequested(vec![sid(1)]));
    let actions = sim.run(Event::SignalRequested {
        ids: vec![sid(0), sid(1)],
        signal: Signal::SIGHUP,
    });
    // b is stopping and still has its process: it gets the signal too.
    assert!(actions.contains(&Action::Signal {
        pid: a,
        signal: Signal::SIGHUP
    }));
}

mod readiness {
    use super::*;
    use crate::config::probes::{HealthSpec, Kind, OnUnhealthy, Probe, ReadyMethod, ReadySpec};

    fn oneshot(name: &str, optional: bool) -> ServiceSpec {
        ServiceSpec {
            kind: Kind::Oneshot {
                timeout: Some(Duration::from_secs(2)),
                optional,
            },
            ..spec(name, &[])
        }
    }

    fn polled(name: &str) -> ServiceSpec {
        ServiceSpec {
            ready: Some(ReadySpec {
                method: ReadyMethod::Poll(Probe::File("/run/x".into())),
                timeout: Duration::from_secs(3),
                interval: Duration::from_millis(200),
                check_timeout: Duration::from_secs(5),
            }),
            ..spec(name, &[])
        }
    }

    fn probe(id: ServiceId, run: u64, purpose: Purpose) -> Action {
        Action::Probe { id, run, purpose }
    }

    fn result(id: ServiceId, run: u64, purpose: Purpose, ok: bool) -> Event {
        Event::ProbeDone(ProbeResult {
            id,
            run,
            purpose,
            ok,
            output: if ok { "ok".into() } else { "refused".into() },
        })
    }

    #[test]
    fn oneshot_done_lets_dependents_start() {
        let mut sim = Sim::new(vec![oneshot("setup", false), spec("app", &["setup"])], true);
        let actions = sim.run(Event::Boot);
        assert_eq!(
            spawned(&actions),
            vec![sid(0)],
            "app waits for setup to finish"
        );
        assert!(!actions.contains(&Action::SpawnMain));
        let actions = sim.exit("setup", ExitStatus::Code(0));
        assert_eq!(sim.state("setup"), &State::Exited);
        assert_eq!(spawned(&actions), vec![sid(1)]);
        assert!(
            actions.contains(&Action::SpawnMain),
            "main after setup and app: {actions:?}"
        );
        let st = sim.sup.status(&[sid(0)], sim.now);
        assert!(st[0].ready && st[0].kind == "oneshot");
        // app crashing and restarting does not run setup again.
        sim.exit("app", ExitStatus::Code(1));
        assert_eq!(
            spawned(&sim.advance(Duration::from_millis(100))),
            vec![sid(1)]
        );
    }

    #[test]
    fn a_oneshot_exit_in_success_exit_codes_is_done() {
        let setup = ServiceSpec {
            success_exit_codes: vec![0, 7],
            ..oneshot("setup", false)
        };
        let mut sim = Sim::new(vec![setup, spec("app", &["setup"])], false);
        sim.run(Event::Boot);
        let actions = sim.exit("setup", ExitStatus::Code(7));
        assert_eq!(sim.state("setup"), &State::Exited);
        assert_eq!(spawned(&actions), vec![sid(1)], "app starts after it");
        let complaints = sim.sup.complaints();
        assert!(
            complaints.iter().all(|(name, _)| name != "setup"),
            "{complaints:?}"
        );
    }

    #[test]
    fn failed_oneshot_blocks_dependents_and_stops_the_container_with_3() {
        let mut sim = Sim::new(
            vec![oneshot("setup", false), spec("app", &["setup"])],
            false,
        );
        sim.run(Event::Boot);
        let actions = sim.exit("setup", ExitStatus::Code(4));
        assert!(spawned(&actions).is_empty());
        let st = sim.sup.status(&[sid(1)], sim.now);
        assert_eq!(st[0].state, "stopped", "shutdown took app's want away");
        assert!(
            actions.contains(&Action::SignalOrphans(Signal::SIGTERM)),
            "{actions:?}"
        );
        assert_eq!(
            sim.run(Event::NoChildren),
            vec![Action::Exit(EXIT_ONESHOT_FAILED)]
        );
    }

    #[test]
    fn failed_oneshot_started_by_hand_blocks_without_stopping() {
        let mut setup = oneshot("setup", false);
        setup.enabled = false;
        let mut app = spec("app", &["setup"]);
        app.enabled = false;
        let mut sim = Sim::new(vec![setup, app], false);
        sim.run(Event::Boot);
        sim.run(Event::StartRequested(vec![sid(1)]));
        sim.exit("setup", ExitStatus::Code(1));
        assert!(!sim.sup.is_shutting_down());
        let st = &sim.sup.status(&[sid(1)], sim.now)[0];
        assert_eq!(st.state, "blocked");
        assert!(
            st.note
                .as_deref()
                .unwrap()
                .contains("setup failed: exit code 1"),
            "{st:?}"
        );
        assert!(
            matches!(sim.sup.progress(sid(1), Goal::Up { starts_before: 0 }), Progress::Failed(why) if why.contains("blocked"))
        );
    }

    #[test]
    fn optional_oneshot_failure_lets_dependents_start() {
        let mut sim = Sim::new(vec![oneshot("setup", true), spec("app", &["setup"])], false);
        sim.run(Event::Boot);
        let actions = sim.exit("setup", ExitStatus::Code(1));
        assert_eq!(spawned(&actions), vec![sid(1)]);
        assert!(!sim.sup.is_shutting_down());
    }

    #[test]
    fn oneshot_timeout_kills_and_fails() {
        let mut sim = Sim::new(vec![oneshot("setup", false)], false);
        sim.run(Event::Boot);
        let pid = sim.pid("setup");
        let actions = sim.advance(Duration::from_secs(2));
        assert_eq!(actions.first(), Some(&term(pid)));
        sim.exit("setup", ExitStatus::Signaled(Signal::SIGTERM));
        assert!(
            matches!(sim.state("setup"), State::Failed { reason } if reason.contains("timed out"))
        );
        assert!(sim.sup.is_shutting_down());
    }

    #[test]
    fn polled_readiness_gates_dependents_and_retries_at_interval() {
        let mut app = spec("app", &["db"]);
        app.ready = None;
        let mut sim = Sim::new(vec![polled("db"), app], false);
        let actions = sim.run(Event::Boot);
        assert!(
            actions.contains(&probe(sid(0), 1, Purpose::Ready)),
            "first check at once: {actions:?}"
        );
        assert_eq!(spawned(&actions), vec![sid(0)]);
        assert!(spawned(&sim.run(result(sid(0), 1, Purpose::Ready, false))).is_empty());
        assert_eq!(
            sim.sup.next_deadline(),
            Some(sim.now + Duration::from_millis(200))
        );
        assert!(sim.advance(Duration::from_millis(199)).is_empty());
        assert_eq!(
            sim.advance(Duration::from_millis(1)),
            vec![probe(sid(0), 1, Purpose::Ready)]
        );
        // A stale result of another run changes nothing.
        assert!(sim.run(result(sid(0), 7, Purpose::Ready, true)).is_empty());
        let actions = sim.run(result(sid(0), 1, Purpose::Ready, true));
        assert_eq!(spawned(&actions), vec![sid(1)]);
        let st = &sim.sup.status(&[sid(0)], sim.now)[0];
        assert!(st.ready && st.ready_ms == Some(200), "{st:?}");
    }

    #[test]
    fn not_ready_in_time_is_a_failed_start() {
        let mut sim = Sim::new(vec![polled("db")], false);
        sim.run(Event::Boot);
        let pid = sim.pid("db");
        sim.run(result(sid(0), 1, Purpose::Ready, false));
        let actions = sim.advance(Duration::from_secs(3));
        assert!(actions.contains(&term(pid)), "{actions:?}");
        assert!(actions.contains(&Action::CancelProbe {
            id: sid(0),
            purpose: Purpose::Ready
        }));
        sim.exit("db", ExitStatus::Signaled(Signal::SIGTERM));
        assert!(
            matches!(sim.state("db"), State::Backoff { .. }),
            "{:?}",
            sim.state("db")
        );
        assert_eq!(sim.sup.services().get(sid(0)).unwrap().failures, 1);
    }

    /// A check that never answers (a server that accepts and then says
    /// nothing) fails after check_timeout and is tried again after the
    /// interval, instead of hanging until the ready timeout.
    #[test]
    fn a_ready_check_that_hangs_fails_after_check_timeout() {
        let mut svc = polled("web");
        if let Some(r) = &mut svc.ready {
            r.timeout = Duration::from_secs(30);
            r.check_timeout = Duration::from_secs(2);
            r.interval = Duration::from_millis(500);
        }
        let mut sim = Sim::new(vec![svc], false);
        let boot = sim.run(Event::Boot);
        let probe = Action::Probe {
            id: sid(0),
            run: 1,
            purpose: Purpose::Ready,
        };
        assert!(boot.contains(&probe), "{boot:?}");
        assert!(sim.advance(Duration::from_millis(1900)).is_empty());
        let timed_out = sim.advance(Duration::from_millis(100));
        assert_eq!(
            timed_out,
            vec![Action::CancelProbe {
                id: sid(0),
                purpose: Purpose::Ready
            }]
        );
        let s = sim.sup.services().get(sid(0)).unwrap();
        assert_eq!(
            s.last_check.as_deref(),
            Some("check timed out after 2000 ms")
        );
        assert!(!s.is_up());
        // The next check follows one interval later, with its own bound.
        assert!(sim.advance(Duration::from_millis(400)).is_empty());
        assert_eq!(sim.advance(Duration::from_millis(100)), vec![probe]);
        sim.run(result(sid(0), 1, Purpose::Ready, true));
        assert!(sim.sup.services().get(sid(0)).unwrap().is_up());
        // Ready: nothing of the old check's bound is left to fire.
        assert!(sim.advance(Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn notify_counts_only_for_notify_services_and_the_current_run() {
        let mut n = spec("n", &[]);
        n.ready = Some(ReadySpec {
            method: ReadyMethod::Notify,
            timeout: Duration::from_secs(5),
            interval: Duration::from_millis(200),
            check_timeout: Duration::from_secs(5),
        });
        let mut sim = Sim::new(vec![n, spec("plain", &[])], false);
        sim.run(Event::Boot);
        let ready = Notice {
            ready: true,
            status: Some("warming up".into()),
            ..Notice::default()
        };
        sim.run(Event::Notified {
            id: sid(0),
            run: 9,
            message: ready.clone(),
        });
        assert!(!sim.sup.services().get(sid(0)).unwrap().is_up());
        sim.run(Event::Notified {
            id: sid(0),
            run: 1,
            message: ready,
        });
        assert!(sim.sup.services().get(sid(0)).unwrap().is_up());
        assert_eq!(
            sim.sup.status(&[sid(0)], sim.now)[0].status_text.as_deref(),
            Some("warming up")
        );
    }

    fn checked(on_unhealthy: OnUnhealthy) -> Sim {
        let mut web = spec("web", &[]);
        web.health = Some(HealthSpec {
            probe: Probe::Tcp {
                addr: "127.0.0.1:80".parse().unwrap(),
                expect: None,
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            retries: 2,
            start_period: Duration::ZERO,
            on_unhealthy,
        });
        let mut sim = Sim::new(vec![web], false);
        sim.run(Event::Boot);
        assert_eq!(
            sim.advance(Duration::from_secs(1)),
            vec![probe(sid(0), 1, Purpose::Health)]
        );
        sim.run(result(sid(0), 1, Purpose::Health, true));
        assert_eq!(
            sim.sup.status(&[sid(0)], sim.now)[0].health.as_deref(),
            Some("healthy")
        );
        assert!(sim.sup.complaints().is_empty());
        // One failure, then a check that times out: unhealthy.
        sim.advance(Duration::from_secs(1));
        sim.run(result(sid(0), 1, Purpose::Health, false));
        sim.advance(Duration::from_secs(1));
        sim
    }

    #[test]
    fn unhealthy_is_reported_and_restarted_when_asked() {
        let mut sim = checked(OnUnhealthy::Nothing);
        let actions = sim.advance(Duration::from_millis(500));
        assert_eq!(
            actions,
            vec![Action::CancelProbe {
                id: sid(0),
                purpose: Purpose::Health
            }]
        );
        let st = &sim.sup.status(&[sid(0)], sim.now)[0];
        assert_eq!(st.health.as_deref(), Some("unhealthy"));
        assert!(
            st.health_output
                .as_deref()
                .unwrap()
                .contains("check timed out"),
            "{st:?}"
        );
        let complaints = sim.sup.complaints();
        assert_eq!(
            complaints,
            vec![(
                "web".to_string(),
                "unhealthy: check timed out after 500 ms".to_string()
            )]
        );

        let mut sim = checked(OnUnhealthy::Restart);
        let pid = sim.pid("web");
        let actions = sim.advance(Duration::from_millis(500));
        assert!(actions.contains(&term(pid)), "{actions:?}");
        let actions = sim.exit("web", ExitStatus::Code(0));
        assert_eq!(spawned(&actions), vec![sid(0)]);
        assert_eq!(sim.sup.services().get(sid(0)).unwrap().restarts, 1);
        assert_eq!(
            sim.sup.status(&[sid(0)], sim.now)[0].health.as_deref(),
            Some("starting")
        );
    }

    #[test]
    fn main_starts_after_readiness_or_at_the_start_timeout() {
        let mut sim = Sim::new(vec![polled("db")], true);
        let actions = sim.run(Event::Boot);
        assert!(!actions.contains(&Action::SpawnMain));
        let actions = sim.run(result(sid(0), 1, Purpose::Ready, true));
        assert!(actions.contains(&Action::SpawnMain));

        let mut slow = polled("db");
        if let Some(r) = &mut slow.ready {
            r.timeout = Duration::from_secs(3600);
        }
        let mut sim = Sim::new(vec![slow], true);
        sim.run(Event::Boot);
        sim.run(result(sid(0), 1, Purpose::Ready, false));
        let mut seen = Vec::new();
        for _ in 0..(DEFAULT_START_TIMEOUT.as_millis() / 200) {
            seen.extend(sim.advance(Duration::from_millis(200)));
        }
        assert!(
            seen.contains(&Action::SpawnMain),
            "main starts at the start timeout"
        );
    }

    #[test]
    fn complaints_name_what_is_wrong() {
        let mut sim = Sim::new(
            vec![oneshot("setup", true), polled("db"), spec("off", &[])],
            false,
        );
        sim.sup.services.get_mut(sid(2)).unwrap().spec.enabled = false;
        sim.run(Event::Boot);
        sim.exit("setup", ExitStatus::Code(2));
        let c = sim.sup.complaints();
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(
            c.iter()
                .any(|(n, w)| n == "setup" && w.contains("exit code 2")),
            "{c:?}"
        );
        assert!(
            c.iter().any(|(n, w)| n == "db" && w.contains("not ready")),
            "{c:?}"
        );
    }
}

#[test]
fn pending_startup_is_reported_once_after_report_after() {
    let mut slow = spec("slow", &[]);
    slow.ready = Some(crate::config::probes::ReadySpec {
        method: crate::config::probes::ReadyMethod::Notify,
        timeout: Duration::from_secs(3600),
        interval: Duration::from_millis(200),
        check_timeout: Duration::from_secs(5),
    });
    let mut sim = Sim::new(vec![slow], false);
    sim.run(Event::Boot);
    let report_at = sim.now + sim.sup.settings.report_after;
    assert_eq!(sim.sup.next_deadline(), Some(report_at));
    assert_eq!(sim.sup.pending_list(), vec!["slow (running)".to_string()]);
    sim.advance(sim.sup.settings.report_after);
    assert!(matches!(
        sim.sup.startup,
        Startup::Pending { nagged: true, .. }
    ));
    // Reported once: no more deadline for it (the ready timeout is later).
    assert_eq!(
        sim.sup.next_deadline(),
        Some(sim.now + Duration::from_secs(3600) - sim.sup.settings.report_after)
    );
    sim.run(Event::Notified {
        id: sid(0),
        run: 1,
        message: Notice {
            ready: true,
            ..Notice::default()
        },
    });
    assert_eq!(sim.sup.startup, Startup::Done);
}

#[test]
fn daemonizing_service_is_adopted_from_its_pidfile() {
    let mut d = spec("daemon", &[]);
    d.pidfile = Some(PathBuf::from("/run/d.pid"));
    let mut sim = Sim::new(vec![d, spec("app", &["daemon"])], false);
    sim.run(Event::Boot);
    let launcher = sim.pid("daemon");
    assert!(
        !sim.sup.services().get(sid(0)).unwrap().is_up(),
        "the launcher is not the daemon"
    );
    assert_eq!(sim.state("app"), &State::Starting);
    // The launcher exits 0: no leftover kill (that is the daemon), a read.
    let actions = sim.exit("daemon", ExitStatus::Code(0));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SignalGroup { pgid, .. } if *pgid == launcher)),
        "{actions:?}"
    );
    assert!(actions.contains(&Action::ReadPidfile { id: sid(0), run: 1 }));
    assert_eq!(sim.sup.status(&[sid(0)], sim.now)[0].state, "starting");
    // Not written yet: read again 100 ms later.
    sim.run(Event::AdoptFailed {
        id: sid(0),
        run: 1,
        reason: "missing".into(),
    });
    assert_eq!(
        sim.advance(Duration::from_millis(100)),
        vec![Action::ReadPidfile { id: sid(0), run: 1 }]
    );
    let actions = sim.run(Event::Adopted {
        id: sid(0),
        run: 1,
        pid: 4242,
    });
    assert_eq!(sim.pid("daemon"), 4242);
    assert!(sim.sup.services().get(sid(0)).unwrap().is_up());
    assert_eq!(
        spawned(&actions),
        vec![sid(1)],
        "app starts once the daemon is adopted"
    );
    // Its exit is the service's exit; stopping it signals it directly too.
    sim.run(Event::StopRequested(vec![sid(0)]));
    sim.exit("app", ExitStatus::Code(0));
    let stop = sim.sup.services().get(sid(0)).unwrap().state.clone();
    assert!(
        matches!(stop, State::Stopping { pid: 4242, .. }),
        "{stop:?}"
    );
    // A pidfile that never works: the start failed, by the restart policy.
    let mut d = spec("daemon", &[]);
    d.pidfile = Some(PathBuf::from("/run/d.pid"));
    let mut sim = Sim::new(vec![d], false);
    sim.run(Event::Boot);
    sim.exit("daemon", ExitStatus::Code(0));
    let mut tries = 0;
    while matches!(sim.state("daemon"), State::Adopting { .. }) {
        sim.run(Event::AdoptFailed {
            id: sid(0),
            run: 1,
            reason: "pid 7 is not a child of corral".into(),
        });
        sim.advance(Duration::from_millis(100));
        tries += 1;
        assert!(tries < 100, "adoption must give up");
    }
    // About ADOPT_TIMEOUT / ADOPT_RETRY tries, then the restart policy.
    assert!((45..=55).contains(&tries), "{tries} tries");
    // The failed start went through backoff to a new launcher.
    let d = &sim.sup.services().get(sid(0)).unwrap();
    assert_eq!(
        (d.failures, d.restarts, d.starts),
        (1, 1, 2),
        "{:?}",
        d.state
    );
}

/// Every (state, event) pair, from a supervisor driven into each state for
/// service `s`: what state follows, and three things that must hold after
/// any pair: the pid table knows exactly the processes the states hold,
/// a tick leaves no deadline due (the old busy loop), and nothing panics.
mod table {
    use super::*;
    use crate::config::actions::{ActionSpec, DEFAULT_TIMEOUT, Does, When};
    use crate::config::probes::{Kind, Probe, ReadyMethod, ReadySpec};

    /// The services of the table, each with an action that may run in any
    /// state (so the Action column starts one everywhere).
    fn spec(name: &str, requires: &[&str]) -> ServiceSpec {
        let mut s = super::spec(name, requires);
        s.actions = vec![ActionSpec {
            name: "a".into(),
            description: None,
            does: Does::Command {
                argv: vec!["/bin/true".into()],
                credentials: None,
            },
            timeout: DEFAULT_TIMEOUT,
            when: When::Any,
        }];
        s
    }

    /// The rows: a state name and how to get `s` (slot 0) into it.
    fn rows() -> Vec<(&'static str, Sim)> {
        let boot = |specs: Vec<ServiceSpec>, answer: bool| {
            let mut sim = Sim::new(specs, false);
            if answer {
                sim.run(Event::Boot);
            } else {
                sim.handle(Event::Boot);
            }
            sim
        };
        let mut rows = Vec::new();
        let mut disabled = spec("s", &[]);
        disabled.enabled = false;
        rows.push(("stopped", boot(vec![disabled], true)));
        // `s` waits for `r`, whose spawn is not answered yet.
        rows.push((
            "starting",
            boot(vec![spec("s", &["r"]), spec("r", &[])], false),
        ));
        rows.push(("spawning", boot(vec![spec("s", &[])], false)));
        let mut polled = spec("s", &[]);
        polled.ready = Some(ReadySpec {
            method: ReadyMethod::Poll(Probe::File("/run/x".into())),
            timeout: Duration::from_secs(3),
            interval: Duration::from_millis(200),
            check_timeout: Duration::from_secs(5),
        });
        rows.push(("running, waiting", boot(vec![polled], true)));
        rows.push(("running, ready", boot(vec![spec("s", &[])], true)));
        let mut daemon = spec("s", &[]);
        daemon.pidfile = Some(PathBuf::from("/run/s.pid"));
        let mut sim = boot(vec![daemon], true);
        sim.exit("s", ExitStatus::Code(0));
        rows.push(("adopting", sim));
        let mut sim = boot(vec![spec("s", &[])], true);
        sim.run(Event::StopRequested(vec![sid(0)]));
        rows.push(("stopping", sim));
        let mut sim = boot(vec![spec("s", &[])], true);
        sim.exit("s", ExitStatus::Code(1));
        rows.push(("backoff", sim));
        let mut optional = spec("s", &[]);
        optional.kind = Kind::Oneshot {
            timeout: None,
            optional: true,
        };
        let mut sim = boot(vec![optional], false);
        sim.run(Event::SpawnFailed {
            id: sid(0),
            error: "ENOENT".into(),
        });
        rows.push(("failed", sim));
        let mut never = spec("s", &[]);
        never.restart = RestartPolicy::Never;
        let mut sim = boot(vec![never], true);
        sim.exit("s", ExitStatus::Code(0));
        rows.push(("exited", sim));
        // Its prepare helper runs (pid 800).
        let mut prepared = spec("s", &[]);
        prepared.prepare = vec![crate::config::prepare::Step {
            verb: crate::config::prepare::Verb::Mkdir {
                path: "/run/s".into(),
                mode: 0o755,
            },
            owner: crate::config::prepare::Owner::Service,
            line: 1,
        }];
        let mut sim = boot(vec![prepared], true);
        sim.run(Event::PrepareSpawned {
            id: sid(0),
            pid: 800,
        });
        rows.push(("preparing", sim));
        // A runit directory's finish runs (pid 850) after an exit.
        let mut runit = spec("s", &[]);
        runit.runit = Some(Box::new(crate::config::runit::RunitDir {
            dir: "/etc/service/s".into(),
            finish: true,
            ..Default::default()
        }));
        let mut sim = boot(vec![runit], true);
        sim.exit("s", ExitStatus::Code(1));
        sim.run(Event::FinishSpawned {
            id: sid(0),
            pid: 850,
        });
        rows.push(("finishing", sim));
        rows
    }

    /// The columns: every event, aimed at `s` where it names a service.
    fn events(sim: &Sim) -> Vec<(&'static str, Event)> {
        let s = sid(0);
        let svc = sim.sup.services().get(s).unwrap();
        let (pid, run) = (svc.state.pid().unwrap_or(4242), svc.starts);
        let helper = match svc.state {
            State::Preparing { pid: Some(p), .. } | State::Finishing { pid: Some(p), .. } => p,
            _ => 4343,
        };
        vec![
            ("Boot", Event::Boot),
            ("Spawned", Event::Spawned { id: s, pid: 9000 }),
            (
                "SpawnFailed",
                Event::SpawnFailed {
                    id: s,
                    error: "EAGAIN".into(),
                },
            ),
            ("MainSpawned", Event::MainSpawned { pid: 9001 }),
            ("MainSpawnFailed", Event::MainSpawnFailed { code: 127 }),
            (
                "Reaped",
                Event::Reaped {
                    pid,
                    status: ExitStatus::Code(1),
                },
            ),
            ("NoChildren", Event::NoChildren),
            ("Tick", Event::Tick),
            ("SIGHUP", Event::SignalReceived(Signal::SIGHUP)),
            ("Start", Event::StartRequested(vec![s])),
            ("Stop", Event::StopRequested(vec![s])),
            ("Restart", Event::RestartRequested(vec![s])),
            (
                "Signal",
                Event::SignalRequested {
                    ids: vec![s],
                    signal: Signal::SIGUSR1,
                },
            ),
            ("Shutdown", Event::ShutdownRequested),
            (
                "Adopted",
                Event::Adopted {
                    id: s,
                    run,
                    pid: 777,
                },
            ),
            (
                "AdoptFailed",
                Event::AdoptFailed {
                    id: s,
                    run,
                    reason: "not yet".into(),
                },
            ),
            (
                "ProbeDone",
                Event::ProbeDone(ProbeResult {
                    id: s,
                    run,
                    purpose: Purpose::Ready,
                    ok: true,
                    output: String::new(),
                }),
            ),
            (
                "Notified",
                Event::Notified {
                    id: s,
                    run,
                    message: Notice {
                        ready: true,
                        ..Notice::default()
                    },
                },
            ),
            ("Run", Event::RunRequested(vec![s])),
            (
                "Action",
                Event::ActionRequested(ActionRequest {
                    client: 1,
                    id: s,
                    name: "a".into(),
                    args: Vec::new(),
                }),
            ),
            ("ActionSpawned", Event::ActionSpawned { run: 0, pid: 9100 }),
            ("PrepareSpawned", Event::PrepareSpawned { id: s, pid: 9200 }),
            (
                "PrepareSpawnFailed",
                Event::PrepareSpawnFailed {
                    id: s,
                    error: "EAGAIN".into(),
                },
            ),
            (
                "PrepareDone",
                Event::PrepareDone {
                    id: s,
                    pid: helper,
                    ok: true,
                    reason: String::new(),
                },
            ),
            (
                "ActionSpawnFailed",
                Event::ActionSpawnFailed {
                    run: 0,
                    error: "EAGAIN".into(),
                },
            ),
            ("FinishSpawned", Event::FinishSpawned { id: s, pid: 9300 }),
            (
                "FinishSpawnFailed",
                Event::FinishSpawnFailed {
                    id: s,
                    error: "EAGAIN".into(),
                },
            ),
            ("FinishDone", Event::FinishDone { id: s, pid: helper }),
        ]
    }

    /// The state word (`running` split by readiness) `s` is in.
    fn word(sim: &Sim) -> String {
        let s = sim.sup.services().get(sid(0)).unwrap();
        match &s.state {
            State::Running {
                ready: Readiness::Waiting { .. },
                ..
            } => "running, waiting".into(),
            State::Running {
                ready: Readiness::Ready { .. },
                ..
            } => "running, ready".into(),
            State::Spawning => "spawning".into(),
            State::Adopting { .. } => "adopting".into(),
            State::Preparing { .. } => "preparing".into(),
            other => other.word().into(),
        }
    }

    // Short names for the states, to keep one row a line.
    const STOPPED: &str = "stopped";
    const STARTING: &str = "starting";
    const SPAWNING: &str = "spawning";
    const WAITING: &str = "running, waiting";
    const READY: &str = "running, ready";
    const ADOPTING: &str = "adopting";
    const STOPPING: &str = "stopping";
    const BACKOFF: &str = "backoff";
    const FAILED: &str = "failed";
    const EXITED: &str = "exited";
    const PREPARING: &str = "preparing";
    const FINISHING: &str = "finishing";

    /// What follows, row by row; the columns are `events` in order: Boot,
    /// Spawned, SpawnFailed, MainSpawned, MainSpawnFailed, Reaped,
    /// NoChildren, Tick, SIGHUP, Start, Stop, Restart, Signal, Shutdown,
    /// Adopted, AdoptFailed, ProbeDone, Notified, Run, Action,
    /// ActionSpawned, PrepareSpawned, PrepareSpawnFailed, PrepareDone,
    /// ActionSpawnFailed, FinishSpawned, FinishSpawnFailed, FinishDone.
    /// Actions never move the service; prepare events move only a
    /// preparing one, finish events only a finishing one (which waits for
    /// its finish whatever is asked meanwhile).
    #[rustfmt::skip]
    const EXPECTED: &[(&str, [&str; 28])] = &[
        (STOPPED,  [STOPPED, STOPPING, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, READY, STOPPED, READY, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED, STOPPED]),
        (STARTING, [STARTING, READY, STARTING, STARTING, STOPPED, STARTING, STARTING, STARTING, STARTING, STARTING, STOPPED, STARTING, STARTING, STOPPED, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING, STARTING]),
        (SPAWNING, [SPAWNING, READY, BACKOFF, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING, SPAWNING]),
        (WAITING,  [WAITING, WAITING, WAITING, WAITING, STOPPING, BACKOFF, WAITING, STOPPING, WAITING, WAITING, STOPPING, STOPPING, WAITING, STOPPING, WAITING, WAITING, READY, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING, WAITING]),
        (READY,    [READY, READY, READY, READY, STOPPING, BACKOFF, READY, READY, READY, READY, STOPPING, STOPPING, READY, STOPPING, READY, READY, READY, READY, READY, READY, READY, READY, READY, READY, READY, READY, READY, READY]),
        (ADOPTING, [ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, READY, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING, ADOPTING]),
        (STOPPING, [STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPED, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING, STOPPING]),
        (BACKOFF,  [BACKOFF, READY, BACKOFF, BACKOFF, STOPPED, BACKOFF, BACKOFF, READY, BACKOFF, READY, STOPPED, READY, BACKOFF, STOPPED, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF, BACKOFF]),
        (FAILED,   [FAILED, WAITING, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, WAITING, FAILED, WAITING, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, WAITING, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED, FAILED]),
        (EXITED,   [EXITED, READY, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, READY, EXITED, READY, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED, EXITED]),
        (PREPARING, [PREPARING, READY, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, PREPARING, READY, PREPARING, PREPARING, PREPARING, PREPARING]),
            (FINISHING, [FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, FINISHING, BACKOFF]),
    ];

    #[test]
    fn every_state_event_pair() {
        let mut seen = Vec::new();
        let rows = rows();
        assert_eq!(rows.len(), EXPECTED.len());
        for ((row, sim0), (expected_row, expected)) in rows.into_iter().zip(EXPECTED) {
            assert_eq!(row, *expected_row);
            assert_eq!(word(&sim0), row, "the row's setup reaches {row}");
            // Every state has its place in the metrics' one-hot series.
            let shown = sim0.sup.samples().first().map(|s| s.state);
            assert!(
                shown.is_some_and(|w| crate::exposition::STATE_WORDS.contains(&w)),
                "{row} is shown as {shown:?}"
            );
            let cols = events(&sim0);
            assert_eq!(cols.len(), expected.len());
            let mut got = Vec::new();
            for (i, (name, _)) in cols.iter().enumerate() {
                // A fresh supervisor per pair, in the row's state.
                let mut sim = rows_again(row);
                let event = events(&sim).swap_remove(i).1;
                if *name == "Tick" {
                    // At the state's own deadline (or much later).
                    let s = sim.sup.services().get(sid(0)).unwrap();
                    sim.now = s
                        .state
                        .deadline()
                        .unwrap_or(sim.now + Duration::from_secs(3600));
                }
                sim.run(event);
                if *name == "Tick" {
                    assert!(
                        sim.sup.next_deadline().is_none_or(|d| d > sim.now),
                        "{row} x Tick leaves a deadline due"
                    );
                }
                for s in sim.sup.services().iter() {
                    if let Some(pid) = s.state.pid() {
                        assert_eq!(
                            sim.sup.pids.get(&pid),
                            Some(&Owner::Service(s.id)),
                            "{row} x {name}: pid {pid} of {} unknown",
                            s.spec.name
                        );
                    }
                }
                for (pid, owner) in &sim.sup.pids {
                    match owner {
                        Owner::Service(id) => {
                            let holder = sim.sup.services().get(*id).and_then(|s| s.state.pid());
                            assert_eq!(
                                holder,
                                Some(*pid),
                                "{row} x {name}: pid {pid} held by no state"
                            );
                        }
                        Owner::Action(run) => assert!(
                            sim.sup
                                .runs
                                .iter()
                                .any(|r| r.run == *run && r.step.pid() == Some(*pid)),
                            "{row} x {name}: action pid {pid} held by no run"
                        ),
                        Owner::Main => {}
                    }
                }
                for r in sim.sup.runs.iter() {
                    if let Some(pid) = r.step.pid() {
                        assert_eq!(sim.sup.pids.get(&pid), Some(&Owner::Action(r.run)));
                    }
                }
                // An action request always gets its answer or its run.
                if *name == "Action" {
                    assert!(
                        !sim.sup.runs.is_empty(),
                        "{row} x Action: a when = \"any\" action did not start"
                    );
                }
                got.push(word(&sim));
                seen.push((row, *name));
            }
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, expected, "row {row}");
        }
        assert_eq!(seen.len(), 12 * 28, "every pair walked");
    }

    fn rows_again(name: &str) -> Sim {
        rows()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .unwrap()
    }
}

mod reloads {
    use super::*;

    fn config(specs: Vec<ServiceSpec>) -> Config {
        Config {
            graph: crate::config::graph_of(&specs).unwrap(),
            services: specs,
            warnings: Vec::new(),
        }
    }

    fn with_argv(mut s: ServiceSpec, argv: &str) -> ServiceSpec {
        s.argv = vec![argv.into()];
        s
    }

    /// Reloads like the runtime does, answering the spawns.
    fn reload(sim: &mut Sim, specs: Vec<ServiceSpec>) -> (Vec<String>, Vec<Action>) {
        let mut out = Vec::new();
        let (plan, _) = sim.sup.reload(config(specs), sim.now, &mut out);
        let mut seen = Vec::new();
        for a in out {
            if let Action::Spawn(id) = a {
                sim.next_pid += 1;
                seen.extend(sim.run(Event::Spawned {
                    id,
                    pid: sim.next_pid,
                }));
            }
            seen.push(a);
        }
        (plan.lines(), seen)
    }

    #[test]
    fn add_remove_restart_and_keep() {
        let mut sim = Sim::new(
            vec![spec("a", &[]), spec("b", &[]), spec("c", &["a"])],
            false,
        );
        sim.run(Event::Boot);
        let (a, b, c) = (sim.pid("a"), sim.pid("b"), sim.pid("c"));
        let (id_b, id_c) = (sim.id("b"), sim.id("c"));
        let (plan, actions) = reload(
            &mut sim,
            vec![
                spec("a", &[]),
                with_argv(spec("c", &["a"]), "/bin/new"),
                spec("d", &["a"]),
            ],
        );
        assert_eq!(
            plan,
            [
                "remove b",
                "restart c (command changed)",
                "add d",
                "1 unchanged"
            ]
        );
        assert!(
            actions.contains(&term(b)) && actions.contains(&term(c)),
            "{actions:?}"
        );
        assert!(actions.iter().any(|x| matches!(x, Action::Register(_))));
        assert_eq!(sim.pid("a"), a, "unchanged keeps its process");
        // b goes once its process is gone; c comes back with the new command.
        let actions = sim.exit("b", ExitStatus::Signaled(Signal::SIGTERM));
        assert!(actions.contains(&Action::Unregister(id_b)), "{actions:?}");
        assert!(sim.sup.lookup("b").is_none());
        let actions = sim.exit("c", ExitStatus::Signaled(Signal::SIGTERM));
        assert_eq!(spawned(&actions), vec![id_c]);
        assert_eq!(
            sim.sup.services().get(id_c).unwrap().spec.argv,
            ["/bin/new"]
        );
        // Edges of the new configuration: stopping a takes c and d down first.
        let d = sim.id("d");
        sim.run(Event::StopRequested(vec![sim.id("a")]));
        for id in [id_c, d] {
            assert_eq!(sim.sup.services().get(id).unwrap().state.word(), "stopping");
        }
        assert_eq!(
            sim.state("a").word(),
            "running",
            "a waits for its dependents"
        );
    }

    #[test]
    fn late_events_for_a_removed_service_reach_nothing() {
        let mut sim = Sim::new(vec![spec("a", &[]), spec("b", &[])], false);
        sim.run(Event::Boot);
        let (id_b, pid_b) = (sim.id("b"), sim.pid("b"));
        reload(&mut sim, vec![spec("a", &[])]);
        sim.exit("b", ExitStatus::Signaled(Signal::SIGTERM));
        // A new service takes b's slot, one generation on.
        let mut polled = spec("f", &[]);
        polled.ready = Some(crate::config::probes::ReadySpec {
            method: ReadyMethod::Notify,
            timeout: Duration::from_secs(3),
            interval: Duration::from_millis(200),
            check_timeout: Duration::from_secs(5),
        });
        reload(&mut sim, vec![spec("a", &[]), polled]);
        let f = sim.id("f");
        assert_eq!((f.slot, f.generation), (id_b.slot, id_b.generation + 1));
        let before = sim.state("f").clone();
        for late in [
            Event::Notified {
                id: id_b,
                run: 1,
                message: Notice {
                    ready: true,
                    ..Notice::default()
                },
            },
            Event::ProbeDone(ProbeResult {
                id: id_b,
                run: 1,
                purpose: Purpose::Ready,
                ok: true,
                output: String::new(),
            }),
            Event::Adopted {
                id: id_b,
                run: 1,
                pid: 4321,
            },
            Event::Reaped {
                pid: pid_b,
                status: ExitStatus::Code(0),
            },
        ] {
            sim.run(late);
            assert_eq!(sim.state("f"), &before, "a late event for b reached f");
        }
    }
}

#[test]
fn status_lists_by_name_and_says_seconds() {
    // By file path, `exim4-log.toml` came before `exim4.toml`.
    let sim = Sim::new(vec![spec("exim4-log", &[]), spec("exim4", &[])], false);
    let names: Vec<String> = sim
        .sup
        .status(&[], sim.now)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["exim4", "exim4-log"]);
    assert_eq!(
        super::view::seconds(Duration::from_millis(19_743)),
        "19.7 s"
    );
    assert_eq!(super::view::seconds(Duration::from_millis(250)), "250 ms");
}

mod actions;
mod finish;
mod journal;
mod prepare;
mod samples;
mod schedules;
