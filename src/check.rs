//! `corral check`: validates a services directory without starting
//! anything, for `RUN corral check` in a Dockerfile.

use std::path::Path;

use crate::config::{self, Missing};

/// Prints every error (`path:line: message`) and warning; returns 0 when
/// the directory is valid, 2 otherwise.
pub fn run(dir: &Path, named: bool) -> i32 {
    // Like corral itself: the default directory may be absent (no
    // services, tini mode); one that was named may not.
    if !named && std::fs::symlink_metadata(dir).is_err() {
        println!(
            "{}: no such directory; corral would run no services (a drop-in for tini)",
            dir.display()
        );
        return 0;
    }
    match config::load_dir(dir, Missing::Error) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            let order: Vec<String> = config
                .graph
                .order
                .iter()
                .filter_map(|&i| config.services.get(i))
                .map(|s| {
                    if s.enabled {
                        s.name.clone()
                    } else {
                        format!("{} (disabled)", s.name)
                    }
                })
                .collect();
            println!(
                "{}: {} service(s) valid; start order: {}",
                dir.display(),
                config.services.len(),
                if order.is_empty() {
                    "-".to_string()
                } else {
                    order.join(", ")
                }
            );
            0
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", dir.display(), errors.len());
            crate::runtime::EXIT_CONFIG
        }
    }
}
