//! Arbitrary bytes as a spool segment: recovery never panics, and what it
//! reports stays inside the buffer (see `nightjar_agent::spool::fuzz_scan`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nightjar_agent::spool::fuzz_scan(data);
});
