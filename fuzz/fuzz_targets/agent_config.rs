//! Arbitrary text as the agent's config file: parsing and validation end in
//! a config or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_agent::config::{Config, Overrides, RawConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = toml::from_str::<RawConfig>(text) else {
        return;
    };
    let _ = Config::build(
        Some((std::path::Path::new("/nonexistent/fuzz/agent.toml"), raw)),
        Overrides::default(),
        || "fuzz-host".to_owned(),
    );
});
