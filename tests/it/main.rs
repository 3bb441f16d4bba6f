//! Integration tests: the real corral binary as PID 1 of a fresh PID
//! namespace, driven through svctl. A small runner (harness = false) runs
//! them four at a time, prints each one's time, and names the reason of
//! every skip; with CORRAL_IT_REQUIRE=1 (CI) a skip is a failure.

mod access;
mod actions;
mod environ;
mod events;
mod harness;
mod import;
mod lifecycle;
mod load;
mod logs;
mod metrics;
mod pid1;
mod prepare;
mod ready;
mod reload;
mod runit;
mod schedules;
mod security;
mod supervisord;
mod svctl;
mod tooling;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use harness::{Skip, Test};

fn main() {
    // Helper mode for the load tests: this binary, run as a service.
    if let Some(n) = std::env::args()
        .skip_while(|a| a != "--orphan-storm")
        .nth(1)
    {
        load::orphan_storm(n.parse().unwrap_or(0));
        return;
    }
    let mut tests: Vec<Test> = Vec::new();
    tests.extend(lifecycle::TESTS);
    tests.extend(pid1::TESTS);
    tests.extend(svctl::TESTS);
    tests.extend(ready::TESTS);
    tests.extend(logs::TESTS);
    tests.extend(access::TESTS);
    tests.extend(reload::TESTS);
    tests.extend(security::TESTS);
    tests.extend(schedules::TESTS);
    tests.extend(load::TESTS);
    tests.extend(tooling::TESTS);
    tests.extend(actions::TESTS);
    tests.extend(environ::TESTS);
    tests.extend(prepare::TESTS);
    tests.extend(events::TESTS);
    tests.extend(metrics::TESTS);
    tests.extend(runit::TESTS);
    tests.extend(import::TESTS);
    tests.extend(supervisord::TESTS);

    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return;
    }
    tests.retain(|(name, _)| args.is_empty() || args.iter().any(|a| name.contains(a.as_str())));
    // One short report per failure; the runner names the test.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        eprintln!("--- panicked at {location}:\n{message}\n");
    }));
    let require = std::env::var("CORRAL_IT_REQUIRE").is_ok_and(|v| v == "1");
    println!("\nrunning {} integration tests", tests.len());

    let queue = Mutex::new(tests.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some((name, test)) = next else { break };
                    let t0 = Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(test));
                    let secs = t0.elapsed().as_secs_f64();
                    let line = match &outcome {
                        Ok(Ok(())) => format!("test {name} ... ok ({secs:.2}s)"),
                        Ok(Err(Skip(why))) => format!("test {name} ... skipped: {why}"),
                        Err(_) => format!("test {name} ... FAILED ({secs:.2}s)"),
                    };
                    println!("{line}");
                    let kind = match outcome {
                        Ok(Ok(())) => 0,
                        Ok(Err(_)) => 2,
                        Err(_) => 1,
                    };
                    results.lock().unwrap().push(kind);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let count = |k| results.iter().filter(|&&r| r == k).count();
    let (passed, failed, skipped) = (count(0), count(1), count(2));
    println!("\n{passed} passed, {failed} failed, {skipped} skipped");
    if skipped > 0 && require {
        println!("CORRAL_IT_REQUIRE=1: skipped tests count as failures");
    }
    if failed > 0 || (skipped > 0 && require) {
        std::process::exit(1);
    }
}
