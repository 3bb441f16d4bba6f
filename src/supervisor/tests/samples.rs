//! What metrics are told (`Supervisor::samples`): the counters move with
//! what happened, and only with that.

use super::*;
use crate::config::probes::{HealthSpec, OnUnhealthy, Probe, ReadyMethod, ReadySpec};
use crate::exposition::ServiceSample;

fn sample(sim: &Sim, name: &str) -> ServiceSample {
    sim.sup
        .samples()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

#[test]
fn a_crash_loop_counts_starts_restarts_and_failures() {
    let mut sim = Sim::new(vec![spec("web", &[])], false);
    sim.run(Event::Boot);
    let s = sample(&sim, "web");
    assert_eq!(
        (s.state, s.up, s.starts, s.restarts, s.failures),
        ("running", true, 1, 0, 0)
    );
    let boot_wall = sim.wall.as_second() as f64;
    assert_eq!(s.start_time, Some(boot_wall));
    assert_eq!(s.last_exit_code, None);
    assert_eq!(s.healthy, None, "no [health], no verdict");

    sim.exit("web", ExitStatus::Signaled(Signal::SIGSEGV));
    let s = sample(&sim, "web");
    assert_eq!((s.state, s.up, s.failures), ("backoff", false, 1));
    assert_eq!(s.last_exit_code, Some(128 + 11));
    assert_eq!(s.start_time, None, "no process, no start time");
    sim.advance(Duration::from_secs(1));
    sim.exit("web", ExitStatus::Code(3));
    sim.advance(Duration::from_secs(1));
    let s = sample(&sim, "web");
    assert_eq!((s.starts, s.restarts, s.failures), (3, 2, 2));
    assert_eq!(s.start_time, Some(boot_wall + 2.0));
    // A third quick failure is over the budget (limit 2): failed.
    sim.exit("web", ExitStatus::Code(3));
    let s = sample(&sim, "web");
    assert_eq!((s.state, s.failures), ("failed", 3));

    // A stop asked for is not a failure, whatever the exit status.
    sim.run(Event::StartRequested(vec![sim.id("web")]));
    sim.run(Event::StopRequested(vec![sim.id("web")]));
    sim.exit("web", ExitStatus::Signaled(Signal::SIGTERM));
    let s = sample(&sim, "web");
    assert_eq!((s.state, s.starts, s.failures), ("stopped", 4, 3));
    assert_eq!(s.last_exit_code, Some(143));
}

#[test]
fn not_ready_in_time_and_unhealthy_are_failures() {
    let mut slow = spec("slow", &[]);
    slow.ready = Some(ReadySpec {
        method: ReadyMethod::Poll(Probe::File("/run/x".into())),
        timeout: Duration::from_secs(3),
        interval: Duration::from_secs(10),
        check_timeout: Duration::from_secs(5),
    });
    let mut sick = spec("sick", &[]);
    sick.health = Some(HealthSpec {
        probe: Probe::File("/run/y".into()),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
        start_period: Duration::ZERO,
        on_unhealthy: OnUnhealthy::Nothing,
    });
    let mut sim = Sim::new(vec![slow, sick], false);
    sim.run(Event::Boot);
    assert_eq!(sample(&sim, "slow").state, "running");
    assert!(!sample(&sim, "slow").up, "running, not ready");
    sim.advance(Duration::from_secs(4));
    assert_eq!(sample(&sim, "slow").failures, 1);
    let sick = sim.id("sick");
    let run = sim.sup.services().get(sick).unwrap().starts;
    sim.run(Event::ProbeDone(ProbeResult {
        id: sick,
        run,
        purpose: Purpose::Health,
        ok: false,
        output: "refused".into(),
    }));
    let s = sample(&sim, "sick");
    assert_eq!((s.healthy, s.failures), (Some(false), 1));
    sim.run(Event::ProbeDone(ProbeResult {
        id: sick,
        run,
        purpose: Purpose::Health,
        ok: true,
        output: "ok".into(),
    }));
    let s = sample(&sim, "sick");
    assert_eq!((s.healthy, s.failures), (Some(true), 1));
}

#[test]
fn orphans_are_counted_and_known_processes_are_not() {
    let mut sim = Sim::new(vec![spec("web", &[])], false);
    sim.run(Event::Boot);
    sim.run(Event::Reaped {
        pid: 4242,
        status: ExitStatus::Code(0),
    });
    sim.exit("web", ExitStatus::Code(0));
    assert_eq!(sim.sup.orphans_reaped(), 1);
}
