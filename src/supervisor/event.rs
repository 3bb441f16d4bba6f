//! What the supervisor is told (`Event`, past-tense facts) and what it asks
//! the runtime to do (`Action`, imperatives). Plain data, no behaviour.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::proto::LastExit;

/// A process id as the kernel gives it.
pub type Pid = i32;

/// A service's identity: its slot in the supervisor's roster and that
/// slot's generation (see `roster`). It survives adding and removing other
/// services; once its service is removed, it matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ServiceId {
    pub slot: u32,
    pub generation: u32,
}

impl ServiceId {
    /// The id in 46 bits, for an epoll token (48 bits, two of them left
    /// for the probe's own flags): 22 bits of slot, 24 of generation
    /// (generations wrap at 24 bits; 4 million slots is plenty).
    pub fn bits(self) -> u64 {
        (u64::from(self.slot & 0x3f_ffff) << 24) | u64::from(self.generation & 0xff_ffff)
    }

    pub fn from_bits(bits: u64) -> ServiceId {
        ServiceId {
            slot: ((bits >> 24) & 0x3f_ffff) as u32,
            generation: (bits & 0xff_ffff) as u32,
        }
    }
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signaled(Signal),
}

impl ExitStatus {
    /// Exit code 0: a helper's success (a check, a prepare step, an
    /// action). A service's exits go by its `success_exit_codes`:
    /// `succeeded`.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// Whether this exit of `spec`'s process counts as success.
    pub fn succeeded(self, spec: &crate::config::ServiceSpec) -> bool {
        matches!(self, ExitStatus::Code(c) if spec.success_code(c))
    }

    /// The shell convention: the code, or 128 + the signal number.
    pub fn as_exit_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signaled(s) => 128 + s as i32,
        }
    }

    pub fn to_proto(self) -> LastExit {
        match self {
            ExitStatus::Code(c) => LastExit::Code(c),
            ExitStatus::Signaled(s) => LastExit::Signal(s as i32),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by {}", s.as_str()),
        }
    }
}

/// Facts the runtime reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The configuration is loaded and the loop runs: start what is enabled.
    Boot,
    /// An `Action::Spawn` succeeded.
    Spawned { id: ServiceId, pid: Pid },
    /// An `Action::Spawn` failed before the program ran (exec error, fork
    /// EAGAIN...).
    SpawnFailed { id: ServiceId, error: String },
    /// The main command (`corral -- CMD`) is running.
    MainSpawned { pid: Pid },
    /// The main command could not be executed; `code` is 126 or 127.
    MainSpawnFailed { code: i32 },
    /// waitpid returned this child: a service, the main command or an orphan.
    Reaped { pid: Pid, status: ExitStatus },
    /// waitpid said ECHILD: corral has no children left.
    NoChildren,
    /// Time has passed; deadlines at or before `now` are due.
    Tick,
    /// corral received a signal (other than SIGCHLD, which the runtime
    /// turns into `Reaped`).
    SignalReceived(Signal),
    /// svctl start: the services and everything they require.
    StartRequested(Vec<ServiceId>),
    /// `svctl run`: run these oneshots now (their overlap applies).
    RunRequested(Vec<ServiceId>),
    /// svctl stop: the services and everything that requires them.
    StopRequested(Vec<ServiceId>),
    /// svctl restart: these services only.
    RestartRequested(Vec<ServiceId>),
    /// svctl signal: deliver to the services' main processes.
    SignalRequested { ids: Vec<ServiceId>, signal: Signal },
    /// svctl shutdown.
    ShutdownRequested,
    /// The pidfile named a live child of corral: supervise it.
    Adopted { id: ServiceId, run: u64, pid: Pid },
    /// The pidfile could not be used (yet): missing, garbage, not a child.
    AdoptFailed {
        id: ServiceId,
        run: u64,
        reason: String,
    },
    /// A probe started by `Action::Probe` finished.
    ProbeDone(ProbeResult),
    /// The service spoke for itself: a newline on its readiness fd, or a
    /// notify message from one of its processes.
    Notified {
        id: ServiceId,
        run: u64,
        message: Notice,
    },
    /// An `Action::Prepare` started its helper.
    PrepareSpawned { id: ServiceId, pid: Pid },
    /// An `Action::Prepare` could not start its helper.
    PrepareSpawnFailed { id: ServiceId, error: String },
    /// The prepare helper `pid` of service `id` exited: every step done
    /// (`ok`), or why not.
    PrepareDone {
        id: ServiceId,
        pid: Pid,
        ok: bool,
        reason: String,
    },
    /// `svctl action`: run one action of a service.
    ActionRequested(ActionRequest),
    /// An `Action::StartAction` succeeded.
    ActionSpawned { run: u64, pid: Pid },
    /// An `Action::StartAction` failed before the command ran.
    ActionSpawnFailed { run: u64, error: String },
    /// An `Action::Finish` started its helper.
    FinishSpawned { id: ServiceId, pid: Pid },
    /// An `Action::Finish` could not start its helper.
    FinishSpawnFailed { id: ServiceId, error: String },
    /// The finish helper `pid` of service `id` ended.
    FinishDone { id: ServiceId, pid: Pid },
}

/// `svctl action SERVICE NAME ARGS...`, from the svctl connection `client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub client: u64,
    pub id: ServiceId,
    pub name: String,
    pub args: Vec<String>,
}

/// Why corral ended an action's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its `timeout` passed.
    TimedOut,
    /// corral is shutting down.
    Shutdown,
}

/// How an action request ended, for the client that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Not run: an unknown action or bad arguments (`bad_request`), or not
    /// now (the service is down, a run is in progress, shutdown).
    Refused { message: String, bad_request: bool },
    /// A signal action: sent.
    Signalled { message: String },
    /// The command could not be started.
    NotStarted { message: String },
    /// The command of run `run` ended.
    Exited {
        run: u64,
        label: String,
        status: ExitStatus,
        timeout: Duration,
        ending: Option<Ending>,
    },
}

/// The outcome of one check. `run` is the service's start count when the
/// check was asked for, so results of an earlier run are recognised and
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub id: ServiceId,
    pub run: u64,
    pub purpose: Purpose,
    pub ok: bool,
    /// The last line the check printed, or why it failed.
    pub output: String,
}

/// What a probe is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Ready,
    Health,
}

/// The parts of a notify message corral acts on (sd_notify(3)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    /// READY=1 (or a newline on the readiness fd).
    pub ready: bool,
    /// STATUS=...
    pub status: Option<String>,
    /// STOPPING=1
    pub stopping: bool,
    /// MAINPID=...
    pub main_pid: Option<Pid>,
}

/// Commands for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the service's process; answer with `Spawned` or `SpawnFailed`.
    Spawn(ServiceId),
    /// Run the service's `[[prepare]]` steps in a helper; answer with
    /// `PrepareSpawned` or `PrepareSpawnFailed`, then `PrepareDone`.
    Prepare(ServiceId),
    /// Run service `id`'s runit `finish` with runit's two arguments: the
    /// exit code (-1 when killed by a signal) and the signal number (0
    /// for an exit). `FinishSpawned` or `FinishSpawnFailed`, then
    /// `FinishDone`.
    Finish {
        id: ServiceId,
        code: i32,
        signal: i32,
    },
    /// Start the main command; answer with `MainSpawned` or `MainSpawnFailed`.
    SpawnMain,
    /// kill(2) one process.
    Signal { pid: Pid, signal: Signal },
    /// kill(2) a whole process group (a service's session).
    SignalGroup { pgid: Pid, signal: Signal },
    /// Signal every process left in the container (or, when corral is not
    /// PID 1, every child corral still has), then report `NoChildren` once
    /// none is left.
    SignalOrphans(Signal),
    /// Run the service's ready or health check; answer with `ProbeDone`.
    Probe {
        id: ServiceId,
        run: u64,
        purpose: Purpose,
    },
    /// Read the service's pidfile; answer with `Adopted` or `AdoptFailed`.
    ReadPidfile { id: ServiceId, run: u64 },
    /// Abandon a check still running (kill an exec check, drop a connect).
    CancelProbe { id: ServiceId, purpose: Purpose },
    /// A reload added service `id`: keep its log ring and file.
    Register(ServiceId),
    /// A reload removed service `id`, which has no process left: forget
    /// its ring, file, sockets and checks.
    Unregister(ServiceId),
    /// Service `id` has a new definition: apply its `[log]` settings.
    Reconfigure(ServiceId),
    /// Run action `name` of service `id` with `args` (a command action);
    /// answer with `ActionSpawned` or `ActionSpawnFailed`.
    StartAction {
        run: u64,
        /// The svctl connection its output streams to.
        client: u64,
        id: ServiceId,
        name: String,
        args: Vec<String>,
    },
    /// Tell the client that asked for an action how it ended.
    ActionDone { client: u64, outcome: ActionOutcome },
    /// Tell `svctl events` listeners (see `journal`).
    Publish(Box<crate::proto::EventLine>),
    /// Tell whatever supervises corral (its NOTIFY_SOCKET, as podman
    /// --sdnotify=container or systemd pass it) this sd_notify(3) message,
    /// if it asked to be told.
    Announce(String),
    /// Leave the event loop and exit with this code.
    Exit(i32),
}
