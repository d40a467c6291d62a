//! Arbitrary text as an alert rule file: a list of valid rules or an error
//! naming the file, never a panic; and every accepted threshold rule keeps
//! its promises (recovery not beyond the lowest threshold, critical beyond
//! warning), which the state machine relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_model::alert::rules::{RuleKind, parse_rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_rules("fuzz.toml", text) {
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml")),
        Ok(rules) => {
            for rule in rules {
                if let RuleKind::Threshold { thresholds: t, .. } = rule.kind {
                    let lowest = t.warning.or(t.critical).expect("a threshold");
                    assert!(!t.op.beyond(t.recovery, lowest));
                    if let (Some(w), Some(c)) = (t.warning, t.critical) {
                        assert!(c == w || t.op.beyond(c, w));
                    }
                }
            }
        }
    }
});
