//! The runtime: the only part of corral that makes system calls. One
//! thread, one epoll wait whose timeout is the earliest deadline; idle means
//! no wakeups at all. It feeds facts (signals, exits, requests) to the
//! supervisor as events and carries out the actions it returns.

mod actions;
pub mod boot;
pub mod control;
mod facts;
mod helpers;
pub mod logfile;
mod logpipes;
mod metrics;
pub mod notify;
pub mod output;
pub mod panic;
pub mod probes;
pub mod reaper;
mod reload;
pub mod signals;
pub mod sink;
pub mod spawn;
pub mod throttle;
mod wallclock;

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tracing::{debug, error, info, warn};

use crate::cli::RunOptions;
use crate::config::model::LogPipe;
use crate::config::probes::ReadyMethod;
use crate::config::{Config, ServiceSpec};
use crate::logs::Stream;
use crate::supervisor::{Action, Event, Purpose, ServiceId, Settings, Supervisor};
use control::access::Policy;
use control::{Control, Input};
use notify::Notify;
use output::{Global, Output};
use probes::Probes;
use signals::Signals;
use spawn::{Extras, Target};

/// Exit code when corral cannot set itself up (no signalfd, no epoll).
pub const EXIT_SETUP: i32 = 1;
/// Exit code for an invalid configuration or command line.
pub const EXIT_CONFIG: i32 = 2;

/// Spawns per turn of the event loop; the loop looks at its descriptors
/// (svctl, pipes, signals) between batches.
const SPAWN_BATCH: usize = 16;

/// At exit, how long corral waits for a slow reader of its output.
const EXIT_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// What an epoll token refers to: the kind in the top 16 bits, an id below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Signals = 0,
    Listener = 1,
    Client = 2,
    Pipe = 3,
    Probe = 4,
    ReadyFd = 5,
    Notify = 6,
    Sink = 7,
    WallClock = 8,
    Helper = 9,
    MetricsListener = 10,
    MetricsClient = 11,
}

impl TryFrom<u64> for Kind {
    type Error = u64;

    fn try_from(n: u64) -> Result<Kind, u64> {
        Ok(match n {
            0 => Kind::Signals,
            1 => Kind::Listener,
            2 => Kind::Client,
            3 => Kind::Pipe,
            4 => Kind::Probe,
            5 => Kind::ReadyFd,
            6 => Kind::Notify,
            7 => Kind::Sink,
            8 => Kind::WallClock,
            9 => Kind::Helper,
            10 => Kind::MetricsListener,
            11 => Kind::MetricsClient,
            other => return Err(other),
        })
    }
}

pub(crate) fn token(kind: Kind, id: u64) -> u64 {
    ((kind as u64) << 48) | (id & 0xffff_ffff_ffff)
}

/// The kind and id of an epoll token; `Err` for a kind corral never made.
fn untoken(token: u64) -> Result<(Kind, u64), u64> {
    Ok((Kind::try_from(token >> 48)?, token & 0xffff_ffff_ffff))
}

pub(crate) struct Runtime {
    epoll: Epoll,
    signals: Signals,
    control: Option<Control>,
    /// The metrics endpoint, when asked for.
    metrics: Option<metrics::Metrics>,
    /// Between runit services and their loggers.
    log_pipes: logpipes::LogPipes,
    output: Output,
    probes: Probes,
    /// Exec checks and actions in progress.
    helpers: helpers::Helpers,
    /// The svctl connection each action run answers, by run.
    action_clients: std::collections::HashMap<u64, u64>,
    /// What inspect tells beside the services.
    facts: facts::Facts,
    /// Wakes the loop at cron due times and on clock steps.
    wall_clock: Option<wallclock::WallClock>,
    notify: Notify,
    sup: Supervisor,
    main_argv: Option<Vec<String>>,
    inherited: Vec<RawFd>,
    /// corral's own NOTIFY_SOCKET, when it has services: told READY=1 once
    /// startup is done and STOPPING=1 at shutdown. In tini mode it stays
    /// the main command's.
    outer_notify: Option<std::ffi::OsString>,
    /// The services directory, for reloads.
    source: boot::Source,
    /// The launcher of each pidfile service's latest start: its pid and
    /// start time, to tell its daemon from older processes.
    launchers: std::collections::HashMap<crate::supervisor::ServiceId, (i32, u64)>,
    queue: VecDeque<Event>,
    /// Services to spawn, `SPAWN_BATCH` per turn of the loop.
    spawns: VecDeque<ServiceId>,
    /// SIGCHLD was read since the last drain of waitpid.
    child_exited: bool,
    exit: Option<i32>,
}

impl Runtime {
    pub(crate) fn new(
        config: Config,
        opts: &RunOptions,
        inherited: Vec<RawFd>,
        tini_mode: bool,
        policy: Policy,
        source: boot::Source,
    ) -> Result<Runtime, String> {
        let signals = Signals::install().map_err(|e| format!("signalfd: {e}"))?;
        reaper::become_subreaper();
        let epoll_error = |e: nix::Error| format!("epoll: {e}");
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(epoll_error)?;
        epoll
            .add(
                &signals,
                EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Signals, 0)),
            )
            .map_err(epoll_error)?;
        // A drop-in for tini leaves nothing behind: no socket (so no
        // /run/corral) unless one was asked for; there are no services to
        // control anyway.
        let wanted = !tini_mode || opts.socket_named;
        let control = match wanted.then(|| control::bind::bind_control(opts, policy)) {
            None => None,
            Some(Ok(c)) => {
                epoll
                    .add(
                        c.listener_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::Listener, 0)),
                    )
                    .map_err(epoll_error)?;
                Some(c)
            }
            Some(Err(e)) if tini_mode => {
                debug!("no control socket at {}: {e}", opts.socket.display());
                None
            }
            Some(Err(e)) => {
                warn!(
                    "no control socket at {}: {e}; svctl will not work (set --socket or CORRAL_SOCKET to a writable path)",
                    opts.socket.display()
                );
                None
            }
        };
        // Asked for explicitly, yet not worth refusing to run the services
        // over: a port taken is logged, and corral runs on without it.
        let metrics =
            opts.metrics
                .as_ref()
                .and_then(|addr| match metrics::Metrics::bind(addr, &epoll) {
                    Ok(m) => {
                        info!("metrics at {addr}");
                        Some(m)
                    }
                    Err(e) => {
                        error!("metrics: cannot listen at {addr}: {e}; running without metrics");
                        None
                    }
                });
        let mut output = Output::new(Global {
            format: opts.log_format,
            timestamps: opts.log_timestamps,
        });
        // Jitter of scheduled jobs: each container its own.
        let mut seed = [0u8; 8];
        let _ = notify::fill_random(&mut seed);
        let settings = Settings {
            start_timeout: opts.start_timeout,
            seed: u64::from_ne_bytes(seed),
            ..Settings::with_budget(opts.shutdown_budget)
        };
        let sup = Supervisor::new(
            config,
            opts.main.is_some(),
            settings,
            Instant::now(),
            jiff::Timestamp::now(),
        );
        for s in sup.services().iter() {
            output.add(s.id, &s.spec);
        }
        crate::logging::capture(true);
        panic::install();
        let wall_clock = if tini_mode {
            None
        } else {
            wallclock::WallClock::new(&epoll)
        };
        Ok(Runtime {
            epoll,
            signals,
            control,
            metrics,
            log_pipes: logpipes::LogPipes::default(),
            output,
            probes: Probes::default(),
            helpers: helpers::Helpers::default(),
            action_clients: std::collections::HashMap::new(),
            // tini mode reads and writes nothing of its own.
            facts: facts::Facts::gather(opts.main.clone(), !tini_mode),
            wall_clock,
            notify: Notify::new(),
            sup,
            main_argv: opts.main.clone(),
            inherited,
            launchers: std::collections::HashMap::new(),
            source,
            outer_notify: (!tini_mode)
                .then(|| std::env::var_os("NOTIFY_SOCKET"))
                .flatten(),
            queue: VecDeque::new(),
            spawns: VecDeque::new(),
            child_exited: false,
            exit: None,
        })
    }

    pub(crate) fn run(&mut self) -> i32 {
        self.queue.push_back(Event::Boot);
        // Zombies from before the signalfd existed (corral exec'd by a
        // process whose children had exited) raised a SIGCHLD nobody will
        // read: reaped now, before anything else runs, rather than on the
        // first wakeup, which is often a signal to forward.
        self.reap_exits();
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            self.process();
            if let Some(code) = self.exit {
                // The last messages go through the sink too: a stuck reader
                // gets EXIT_DRAIN, not forever.
                let own = crate::logging::take_captured();
                self.output.own_message(own, &self.epoll);
                self.output.drain(&self.epoll, EXIT_DRAIN);
                crate::logging::capture(false);
                return code;
            }
            if let Some(w) = &mut self.wall_clock {
                w.arm(self.sup.next_wall_deadline());
            }
            let timeout = self.timeout(Instant::now());
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    warn!("epoll_wait: {e}");
                    0
                }
            };
            for ev in events.iter().take(n) {
                self.dispatch(ev.data(), ev.events());
            }
            // Only after a SIGCHLD: waitpid(2) walks every child, which
            // with 500 services is the dearest part of an svctl request.
            // A child that exits after the signalfd was read raises a new
            // SIGCHLD and so a new wakeup (signalfd(2)).
            if std::mem::take(&mut self.child_exited) {
                self.reap();
            }
            if self
                .sup
                .next_deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                self.queue.push_back(Event::Tick);
            }
        }
    }

    /// Feeds queued events to the supervisor and performs its actions
    /// until nothing is left, then answers svctl waiters.
    fn process(&mut self) {
        let mut spawned = 0;
        loop {
            while let Some(event) = self.queue.pop_front() {
                let actions = self
                    .sup
                    .handle(event, Instant::now(), jiff::Timestamp::now());
                for action in actions {
                    self.perform(action);
                }
            }
            // Spawns go in batches: between two, the loop reads the control
            // socket and the pipes, so svctl never waits behind 500 starts
            // (or 50 crash loops restarting at once).
            if spawned == SPAWN_BATCH {
                break;
            }
            let Some(id) = self.spawns.pop_front() else {
                break;
            };
            let event = self.spawn(id);
            self.queue.push_back(event);
            spawned += 1;
        }
        if let Some(c) = &mut self.control {
            c.expire(Instant::now(), &self.epoll);
            c.settle_waiters(&self.sup, &self.output, Instant::now(), &self.epoll);
            let fresh = self.output.take_fresh();
            c.broadcast(&fresh, &self.output, &self.epoll);
            self.output.following = c.has_followers();
        }
        if let Some(m) = &mut self.metrics {
            m.expire(Instant::now(), &self.epoll);
        }
        self.forward_taps();
        // Listeners hear changes from the moment they connected.
        let listening = self.control.as_ref().is_some_and(Control::has_listeners);
        self.sup.set_listening(listening);
        // corral's own messages go through the same non-blocking sink.
        let own = crate::logging::take_captured();
        if !own.is_empty() {
            self.output.own_message(own, &self.epoll);
        }
    }

    /// The epoll timeout: until the earliest deadline, rounded up to whole
    /// milliseconds so we never wake just before it; none when idle; zero
    /// while spawns wait for their batch.
    fn timeout(&self, now: Instant) -> EpollTimeout {
        if !self.spawns.is_empty() {
            return EpollTimeout::ZERO;
        }
        let deadline = [
            self.sup.next_deadline(),
            self.control.as_ref().and_then(Control::next_deadline),
            self.metrics
                .as_ref()
                .and_then(metrics::Metrics::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        match deadline {
            None => EpollTimeout::NONE,
            Some(d) => {
                let ms = d
                    .saturating_duration_since(now)
                    .as_nanos()
                    .div_ceil(1_000_000);
                EpollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(EpollTimeout::MAX)
            }
        }
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) {
        let (kind, id) = match untoken(token) {
            Ok(t) => t,
            Err(kind) => {
                warn!("epoll reported token {token:#x} of unknown kind {kind}; ignored");
                return;
            }
        };
        match kind {
            Kind::Signals => {
                for signal in self.signals.read() {
                    // The panic hook is tested for real: with this set,
                    // SIGUSR2 makes corral panic.
                    if signal == Signal::SIGUSR2
                        && std::env::var_os("CORRAL_TEST_PANIC_ON_SIGUSR2").is_some()
                    {
                        #[allow(clippy::panic)]
                        {
                            panic!("CORRAL_TEST_PANIC_ON_SIGUSR2 and SIGUSR2");
                        }
                    }
                    // Without a main command, SIGHUP reloads (with one, it is
                    // the command's, forwarded like everything else).
                    if signal == Signal::SIGHUP && self.main_argv.is_none() {
                        self.reload_on_hangup();
                        continue;
                    }
                    // SIGCHLD is not an event of its own: the loop reaps
                    // once after this wakeup, however many children exited.
                    if signal == Signal::SIGCHLD {
                        self.child_exited = true;
                    } else {
                        self.queue.push_back(Event::SignalReceived(signal));
                    }
                }
            }
            Kind::Listener => {
                if let Some(c) = &mut self.control {
                    c.accept(&self.epoll);
                }
            }
            Kind::Client => self.on_client(id, flags),
            Kind::MetricsListener => {
                if let Some(m) = &mut self.metrics {
                    m.accept(&self.epoll);
                }
            }
            Kind::MetricsClient => self.on_scrape(id, flags),
            Kind::Pipe => self.output.on_readable(id, &self.epoll),
            Kind::Sink => self.output.on_writable(&self.epoll),
            Kind::WallClock => {
                if let Some(w) = &mut self.wall_clock {
                    w.on_ready();
                }
                self.queue.push_back(Event::Tick);
            }
            Kind::Probe => {
                if let Some(event) = self.probes.on_ready(id, &self.epoll) {
                    self.queue.push_back(event);
                }
            }
            Kind::Helper => self.helpers.on_readable(id, &self.epoll),
            Kind::ReadyFd => {
                let id = ServiceId::from_bits(id);
                if let Some((run, message)) = self.notify.on_pipe(id, &self.epoll) {
                    self.queue.push_back(Event::Notified { id, run, message });
                }
            }
            Kind::Notify => {
                let id = ServiceId::from_bits(id);
                let Some(s) = self.sup.services().get(id) else {
                    return;
                };
                let senders = notify::Senders {
                    session: s.state.pid(),
                    uid: s
                        .spec
                        .credentials
                        .as_ref()
                        .and_then(|c| c.uid)
                        .unwrap_or_else(|| nix::unistd::geteuid().as_raw()),
                };
                let run = s.starts;
                for message in self.notify.on_socket(id, &s.spec.name, senders) {
                    self.queue.push_back(Event::Notified { id, run, message });
                }
            }
        }
    }

    fn on_client(&mut self, id: u64, flags: EpollFlags) {
        let Some(control) = &mut self.control else {
            return;
        };
        if flags.contains(EpollFlags::EPOLLOUT) {
            control.flush(id, &self.epoll);
            return;
        }
        let Input::Request(req) = control.read(id, &self.epoll) else {
            return;
        };
        let plan = control.plan(
            id,
            req,
            &self.sup,
            &self.output,
            &self.facts,
            Instant::now(),
        );
        if let Some(resp) = plan.reply {
            control.reply(id, resp, &self.epoll);
        }
        if let Some(event) = plan.event {
            self.queue.push_back(event);
        }
        if let Some((dry_run, timeout_ms)) = plan.reload {
            self.reload_for(id, dry_run, timeout_ms);
        }
    }

    fn reap(&mut self) {
        if self.reap_exits() {
            self.queue.push_back(Event::NoChildren);
        }
    }

    /// Reaps every exited child and queues what each exit means; true when
    /// no child is left.
    fn reap_exits(&mut self) -> bool {
        let reaped = reaper::drain();
        for (pid, status) in reaped.exits {
            if let Some(id) = self.sup.service_of(pid) {
                self.output.read_now(id, &self.epoll);
            }
            let event = self
                .helpers
                .on_exit(pid, status, &self.epoll)
                .unwrap_or(Event::Reaped { pid, status });
            self.queue.push_back(event);
        }
        reaped.no_children
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Spawn(id) => self.spawns.push_back(id),
            Action::Prepare(id) => {
                let event = match self.start_prepare(id) {
                    Ok(pid) => Event::PrepareSpawned { id, pid },
                    Err(error) => Event::PrepareSpawnFailed { id, error },
                };
                self.queue.push_back(event);
            }
            Action::SpawnMain => {
                let argv = self.main_argv.as_deref().unwrap_or_default();
                let event =
                    match spawn::spawn_main(argv, &self.inherited, self.outer_notify.is_some()) {
                        Ok(pid) => Event::MainSpawned { pid },
                        Err(e) => {
                            error!("{}", e.message);
                            Event::MainSpawnFailed { code: e.code }
                        }
                    };
                self.queue.push_back(event);
            }
            Action::Signal { pid, signal } => match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => warn!("kill({pid}, {}): {e}", signal.as_str()),
            },
            Action::SignalGroup { pgid, signal } => match killpg(Pid::from_raw(pgid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => warn!("killpg({pgid}, {}): {e}", signal.as_str()),
            },
            Action::SignalOrphans(signal) => {
                reaper::signal_orphans(signal);
                // With nothing left to signal, no SIGCHLD will come: look now.
                self.reap();
            }
            Action::Probe { id, run, purpose } => {
                let Some(s) = self.sup.services().get(id) else {
                    return;
                };
                let started =
                    self.probes
                        .start((id, run, purpose), &s.spec, &mut self.helpers, &self.epoll);
                if let Some(event) = started {
                    self.queue.push_back(event);
                }
            }
            Action::CancelProbe { id, purpose } => {
                self.probes
                    .cancel(id, purpose, &mut self.helpers, &self.epoll)
            }
            Action::ReadPidfile { id, run } => {
                let service = self.sup.services().get(id);
                let path = service.and_then(|s| s.spec.pidfile.clone());
                let uid = service
                    .and_then(|s| s.spec.credentials.as_ref())
                    .and_then(|c| c.uid);
                let launcher = self.launchers.get(&id).copied();
                let event = match path.as_deref().map(|p| read_pidfile(p, launcher, uid)) {
                    Some(Ok(pid)) => Event::Adopted { id, run, pid },
                    Some(Err(reason)) => Event::AdoptFailed { id, run, reason },
                    None => Event::AdoptFailed {
                        id,
                        run,
                        reason: "no pidfile configured".into(),
                    },
                };
                self.queue.push_back(event);
            }
            Action::Register(id) => {
                if let Some(s) = self.sup.services().get(id) {
                    self.output.add(id, &s.spec);
                }
            }
            Action::Reconfigure(id) => {
                if let Some(s) = self.sup.services().get(id) {
                    self.output.reconfigure(id, &s.spec);
                }
            }
            Action::Unregister(id) => {
                self.output.remove(id, &self.epoll);
                // A pipe stays while its service or its logger remains.
                let services = self.sup.services();
                self.log_pipes.retain(|key| {
                    services.iter().any(|s| {
                        s.id != id
                            && matches!(&s.spec.log_pipe,
                                Some(LogPipe::Writer(k) | LogPipe::Reader(k)) if k == key)
                    })
                });
                self.notify.forget(id, &self.epoll);
                for purpose in [Purpose::Ready, Purpose::Health] {
                    self.probes
                        .cancel(id, purpose, &mut self.helpers, &self.epoll);
                }
                self.launchers.remove(&id);
            }
            Action::Announce(message) => {
                if let Some(addr) = &self.outer_notify {
                    notify::announce(addr, &message);
                }
            }
            Action::StartAction {
                run,
                client,
                id,
                name,
                args,
            } => {
                let event = match self.start_action(run, client, id, &name, &args) {
                    Ok(pid) => Event::ActionSpawned { run, pid },
                    Err(error) => Event::ActionSpawnFailed { run, error },
                };
                self.queue.push_back(event);
            }
            Action::ActionDone { client, outcome } => self.action_done(client, outcome),
            Action::Finish { id, code, signal } => {
                let event = match self.start_finish(id, code, signal) {
                    Ok(pid) => Event::FinishSpawned { id, pid },
                    Err(error) => Event::FinishSpawnFailed { id, error },
                };
                self.queue.push_back(event);
            }
            Action::Publish(line) => self.publish(*line),
            Action::Exit(code) => self.exit = Some(code),
        }
    }

    /// Opens the output pipes and starts service `id`.
    fn spawn(&mut self, id: ServiceId) -> Event {
        let Some(service) = self.sup.services().get(id) else {
            return Event::SpawnFailed {
                id,
                error: "unknown service".into(),
            };
        };
        let spec = &service.spec;
        let mut relays = Vec::new();
        let stdio = if self.output.inherits(id) {
            Ok((Target::Inherit, Target::Inherit))
        } else {
            let epoll = &self.epoll;
            let output = &mut self.output;
            // A runit service with a logger writes its stdout to it.
            let stdout = match &spec.log_pipe {
                Some(LogPipe::Writer(key)) => self.log_pipes.writer(key).map(Target::Fd),
                Some(LogPipe::Reader(_)) | None => {
                    output
                        .open(id, Stream::Stdout, epoll)
                        .map(|(out_id, out_w)| {
                            relays.push(out_id);
                            Target::Fd(out_w)
                        })
                }
            };
            stdout.and_then(|out| {
                let (err_id, err_w) = output.open(id, Stream::Stderr, epoll)?;
                relays.push(err_id);
                Ok((out, Target::Fd(err_w)))
            })
        };
        let stdin = match &spec.log_pipe {
            Some(LogPipe::Reader(key)) => self.log_pipes.reader(key).map(Some),
            Some(LogPipe::Writer(_)) | None => Ok(None),
        };
        let spawned = stdio
            .and_then(|io| Ok((io, stdin?)))
            .map_err(|e| format!("cannot create output pipes: {e}"))
            .and_then(|((out, err), stdin)| {
                let mut extras =
                    extras(&mut self.notify, &self.epoll, id, service.starts + 1, spec)?;
                extras.stdin = stdin;
                spawn::spawn_service(spec, out, err, extras).map_err(|e| e.to_string())
            });
        match spawned {
            Ok(pid) => {
                if spec.pidfile.is_some() {
                    // What the pidfile names must be of this launch.
                    let start = reaper::proc_stat(pid).map_or(0, |st| st.start);
                    self.launchers.insert(id, (pid, start));
                }
                Event::Spawned { id, pid }
            }
            Err(error) => {
                for relay in relays {
                    self.output.discard(relay, &self.epoll);
                }
                Event::SpawnFailed { id, error }
            }
        }
    }
}

impl Runtime {
    /// A metrics connection is readable or writable; a complete request
    /// for the metrics gets them as of now.
    fn on_scrape(&mut self, id: u64, flags: EpollFlags) {
        let Some(m) = &mut self.metrics else {
            return;
        };
        if let Some(metrics::Ask::Metrics { body }) = m.on_ready(id, flags, &self.epoll) {
            let text = crate::exposition::render(&metrics::snapshot(
                &self.sup,
                &self.output,
                self.control.as_ref(),
            ));
            m.answer(id, text, body, &self.epoll);
        }
    }
}

/// An event line stamped now, to fill in.
fn event_line() -> crate::proto::EventLine {
    crate::proto::EventLine {
        time: crate::logs::time::rfc3339(std::time::SystemTime::now()),
        ..crate::proto::EventLine::default()
    }
}

impl Runtime {
    /// Sends an event to `svctl events` listeners.
    fn publish(&mut self, line: crate::proto::EventLine) {
        if let Some(c) = &mut self.control {
            c.publish(&line, &self.epoll);
        }
    }

    /// Starts service `id`'s runit `finish` with runsv's arguments.
    fn start_finish(&mut self, id: ServiceId, code: i32, signal: i32) -> Result<i32, String> {
        let s = self
            .sup
            .services()
            .get(id)
            .ok_or("the service is gone (reloaded away)")?;
        let dir = s
            .spec
            .runit
            .as_ref()
            .ok_or("not a runit directory")?
            .dir
            .join("finish");
        let argv = [
            dir.display().to_string(),
            code.to_string(),
            signal.to_string(),
        ];
        self.helpers
            .start_finish(id, &s.spec, &argv, &mut self.output, &self.epoll)
    }

    /// Starts the helper that runs service `id`'s `[[prepare]]` steps,
    /// their owners resolved now (`user_env` included).
    fn start_prepare(&mut self, id: ServiceId) -> Result<i32, String> {
        use crate::config::prepare::Owner;
        let s = self
            .sup
            .services()
            .get(id)
            .ok_or("the service is gone (reloaded away)")?;
        let spec = &s.spec;
        let own = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let service_owner = spec
            .credentials
            .as_ref()
            .map_or(own, |c| (c.uid.unwrap_or(own.0), c.gid));
        let payload = crate::prepare::Payload {
            file: spec.source.path.display().to_string(),
            steps: spec
                .prepare
                .iter()
                .map(|step| {
                    let ids = match step.owner {
                        Owner::Service => service_owner,
                        Owner::Ids { uid, gid } => (uid, gid),
                    };
                    (step.clone(), ids)
                })
                .collect(),
        };
        let json = crate::json::to_string(&payload);
        self.helpers
            .start_prepare(id, spec, json, &mut self.output, &self.epoll)
    }
}

/// Largest pidfile read: a pid and a newline, with room for spaces.
const PIDFILE_LIMIT: u64 = 64;

/// The pid a daemon wrote to its pidfile, if corral may adopt it (see
/// `reaper::adoptable`). The file is read without blocking, without
/// following a symlink, and only if it is a small regular file: the
/// directory it is in often belongs to the service.
fn read_pidfile(
    path: &std::path::Path,
    launcher: Option<(i32, u64)>,
    uid: Option<u32>,
) -> Result<i32, String> {
    let bytes = crate::files::read_regular(path, PIDFILE_LIMIT, crate::files::Links::Refuse)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 1)
        // Not echoed: the file could be one the service made corral read.
        .ok_or_else(|| {
            format!(
                "{}: does not hold a pid (one decimal number)",
                path.display()
            )
        })?;
    reaper::adoptable(pid, launcher, uid).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(pid)
}

/// NOTIFY_SOCKET or the readiness pipe of run `run`, as the service's
/// [ready] asks.
fn extras(
    notify: &mut Notify,
    epoll: &Epoll,
    id: ServiceId,
    run: u64,
    spec: &ServiceSpec,
) -> Result<Extras, String> {
    let mut extras = Extras::default();
    match spec.ready.as_ref().map(|r| &r.method) {
        Some(ReadyMethod::Notify) => {
            let addr = notify
                .socket_for(id, &spec.name, epoll)
                .map_err(|e| format!("cannot create the notify socket: {e}"))?;
            extras.env.push(("NOTIFY_SOCKET".into(), addr));
        }
        Some(ReadyMethod::Fd(n)) => {
            let wr = notify
                .ready_pipe(id, run, epoll)
                .map_err(|e| format!("cannot create the readiness pipe: {e}"))?;
            extras.fd = Some((wr, *n));
        }
        Some(ReadyMethod::Poll(_)) | None => {}
    }
    Ok(extras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_unknown_kinds_are_refused() {
        for kind in [
            Kind::Signals,
            Kind::Listener,
            Kind::Client,
            Kind::Pipe,
            Kind::Probe,
            Kind::ReadyFd,
            Kind::Notify,
            Kind::Sink,
            Kind::WallClock,
            Kind::Helper,
            Kind::MetricsListener,
            Kind::MetricsClient,
        ] {
            assert_eq!(untoken(token(kind, 12345)), Ok((kind, 12345)));
        }
        assert_eq!(untoken(99 << 48), Err(99));
    }
}
