//! Boot of the daemon: claim the inherited descriptors, raise the
//! descriptor limit, load and check the services directory (every error
//! reported, nothing started on any), set up corral's own logging and the
//! control policy, then hand over to the event loop.

use tracing::{debug, error, info, warn};
use tracing_subscriber::filter::LevelFilter;

use super::{EXIT_CONFIG, EXIT_SETUP, Runtime, control, spawn};
use crate::cli::RunOptions;
use crate::config::{self, Missing};

/// Loads the configuration and runs until shutdown; returns the exit code.
pub fn run(opts: RunOptions) -> i32 {
    // First, before corral opens anything of its own.
    let inherited = spawn::claim_inherited_fds();
    let nofile = spawn::raise_nofile();
    let missing = if opts.services_named {
        Missing::Error
    } else {
        Missing::Empty
    };
    let own_uid = nix::unistd::geteuid().as_raw();
    let ignore_user = std::env::var("CORRAL_IGNORE_USER").is_ok_and(|v| v == "1");
    let loaded = config::load_dir(&opts.services_dir, missing).and_then(|mut c| {
        let warnings = config::check_identity(&mut c, own_uid, ignore_user)?;
        c.warnings.extend(warnings);
        Ok(c)
    });
    let config = match loaded {
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
    match Runtime::new(config, &opts, inherited, tini_mode, policy) {
        Ok(mut rt) => rt.run(),
        Err(e) => {
            error!("cannot start: {e}");
            EXIT_SETUP
        }
    }
}
