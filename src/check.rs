//! `corral check`: validates a services directory without starting
//! anything, for `RUN corral check` in a Dockerfile.

use std::path::Path;

use crate::config::{self, Missing};

/// Prints every error (`path:line: message`) and warning of the services
/// and of the image metadata; returns 0 when both are valid, 2 otherwise.
pub fn run(dir: &Path, named: bool) -> i32 {
    let services = run_services(dir, named);
    let metadata = run_metadata();
    services.max(metadata)
}

/// The metadata files: every error, or the ancestry they describe.
fn run_metadata() -> i32 {
    let dir = config::metadata::dir();
    let (images, errors) = config::metadata::load(&dir);
    for e in &errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() {
        eprintln!("{}: {} error(s)", dir.display(), errors.len());
        return crate::runtime::EXIT_CONFIG;
    }
    if !images.is_empty() {
        let names: Vec<&str> = images.iter().map(|m| m.name.as_str()).collect();
        println!("{}: images {}", dir.display(), names.join(" <- "));
    }
    0
}

fn run_services(dir: &Path, named: bool) -> i32 {
    // Like corral itself: the default directory may be absent (no
    // services, tini mode); one that was named may not.
    if !named && std::fs::symlink_metadata(dir).is_err() {
        println!(
            "{}: no such directory; corral would run no services (a drop-in for tini)",
            dir.display()
        );
        return 0;
    }
    let loaded = config::load_dir(dir, Missing::Error).and_then(|mut c| {
        // As corral would start now, with this environment.
        config::environ::resolve(&mut c, |k| std::env::var(k).ok())?;
        Ok(c)
    });
    match loaded {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            let order: Vec<String> = config
                .graph
                .order
                .iter()
                .filter_map(|&i| config.services.get(i))
                .map(|s| match (s.enabled, &s.schedule) {
                    (false, _) => format!("{} (disabled)", s.name),
                    (true, Some(_)) => format!("{} (scheduled)", s.name),
                    (true, None) => s.name.clone(),
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
            // Each job's next three runs, so a wrong field or zone shows
            // before the image ships.
            let now = jiff::Timestamp::now();
            for s in &config.services {
                if let Some(sc) = &s.schedule {
                    let next: Vec<String> = sc
                        .upcoming(now, 3)
                        .into_iter()
                        .map(|t| config::schedule::rfc3339(t, &sc.shown_in))
                        .collect();
                    println!("{}: {}; next runs: {}", s.name, sc.when, next.join(", "));
                }
                if let Some(r) = &s.runit {
                    println!("{}", r.summary(&s.name));
                }
                if !s.actions.is_empty() {
                    let names: Vec<&str> = s.actions.iter().map(|a| a.name.as_str()).collect();
                    println!("{}: actions {}", s.name, names.join(", "));
                }
            }
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
