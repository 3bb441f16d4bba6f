//! Boot of the daemon: claim the inherited descriptors, raise the
//! descriptor limit, load and check the services directory (every error
//! reported, nothing started on any), set up corral's own logging and the
//! control policy, then hand over to the event loop.

use crate::logging::LevelFilter;
use tracing::{debug, error, info, warn};

use super::{EXIT_CONFIG, EXIT_SETUP, Runtime, control, spawn};
use crate::cli::RunOptions;
use crate::config::{self, Missing};

/// Where the configuration comes from, kept for reloads.
pub(crate) struct Source {
    pub dir: std::path::PathBuf,
    pub missing: Missing,
    pub own_uid: u32,
    pub ignore_user: bool,
}

impl Source {
    /// Reads and validates the whole directory: a configuration, or every
    /// error in it.
    pub(crate) fn load(&self) -> Result<config::Config, Vec<config::ConfigError>> {
        config::load_dir(&self.dir, self.missing).and_then(|mut c| {
            // enabled_env and user_env, before the identity check sees the
            // ids user_env gives.
            config::environ::resolve(&mut c, |k| std::env::var(k).ok())?;
            let warnings = config::check_identity(&mut c, self.own_uid, self.ignore_user)?;
            c.warnings.extend(warnings);
            Ok(c)
        })
    }
}

/// Loads the configuration and runs until shutdown; returns the exit code.
pub fn run(opts: RunOptions) -> i32 {
    // First, before corral opens anything of its own.
    let inherited = spawn::claim_inherited_fds();
    let nofile = spawn::raise_nofile();
    let source = Source {
        dir: opts.services_dir.clone(),
        missing: if opts.services_named {
            Missing::Error
        } else {
            Missing::Empty
        },
        own_uid: nix::unistd::geteuid().as_raw(),
        ignore_user: std::env::var("CORRAL_IGNORE_USER").is_ok_and(|v| v == "1"),
    };
    let config = match source.load() {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "corral: {} error(s) in {}; nothing was started",
                errors.len(),
                opts.services_dir.display()
            );
            return EXIT_CONFIG;
        }
    };
    // tini mode stays silent unless something is wrong.
    let tini_mode = config.services.is_empty() && opts.main.is_some();
    crate::logging::init(if tini_mode {
        LevelFilter::WARN
    } else {
        LevelFilter::INFO
    });
    for w in &config.warnings {
        warn!("{w}");
    }
    if let Some(n) = nofile {
        debug!("raised the descriptor limit to {n}; services get the original one");
    }
    if config.services.is_empty() && opts.main.is_none() {
        info!(
            "no services in {} and no command: only reaping zombies until SIGTERM",
            opts.services_dir.display()
        );
    }
    let policy = match control::access::policy(opts.control_group.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return EXIT_CONFIG;
        }
    };
    match Runtime::new(config, &opts, inherited, tini_mode, policy, source) {
        Ok(mut rt) => rt.run(),
        Err(e) => {
            error!("cannot start: {e}");
            EXIT_SETUP
        }
    }
}
