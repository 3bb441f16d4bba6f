//! Any bytes as a service file: parsing and validation must answer with
//! errors, never panic. Whatever validates also goes through the graph.
#![no_main]

use std::path::Path;

use corral::config::users::{UserDb, parse_group, parse_passwd};
use corral::config::parse_service;
use corral::graph::Graph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let users = UserDb {
        users: parse_passwd("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n"),
        groups: parse_group("root:x:0:\nnogroup:x:65534:\n"),
    };
    let mut warnings = Vec::new();
    if let Ok(spec) = parse_service(Path::new("/s/x.toml"), "x", data, &users, &mut warnings) {
        let _ = Graph::build(&[spec]);
    }
});
