//! corral: a container-native init and process supervisor.
//!
//! One static binary that runs as PID 1, supervises the services of a
//! `services.d` directory, reaps zombies, forwards signals and shuts down in
//! reverse dependency order. Invoked as `svctl` it is the control client.
//!
//! Layout: `config` and `graph` load and validate; `supervisor` is the pure
//! state machine; `runtime` is the only place that makes system calls;
//! `proto` is the control protocol shared with `ctl`, the client.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[cfg(target_env = "musl")]
pub mod allocator;
pub mod base64;
pub mod bytes;
pub mod check;
pub mod cli;
pub mod completions;
pub mod config;
pub mod ctl;
pub mod exposition;
pub mod files;
pub mod graph;
pub mod import;
pub mod json;
pub mod logging;
pub mod logs;
pub mod prepare;
pub mod proto;
pub mod runtime;
pub mod supervisor;
