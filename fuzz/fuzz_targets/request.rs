//! Any bytes as a control request line: decoded, or refused with a
//! reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = corral::proto::decode_request(data);
});
