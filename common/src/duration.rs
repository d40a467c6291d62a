//! Durations as operators write them: `10s`, `1m`, `1h30m`, `500ms`.

use std::time::Duration;

/// A duration that could not be parsed, naming the key it came from.
#[derive(Debug, thiserror::Error)]
#[error("{key}: invalid duration {value:?} ({reason}); write it like 10s, 1m, 1h30m or 500ms")]
pub struct DurationError {
    /// The config key or flag the value belongs to.
    pub key: String,
    /// The offending text.
    pub value: String,
    /// Why the parser refused it.
    pub reason: String,
}

/// The longest duration accepted anywhere: ten years (365-day). Every
/// duration is then safe to use as milliseconds in an `i64` and to add to
/// a timestamp, so a rule's `window` or a maintenance window's `duration`
/// cannot wrap into the past.
pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses `value` as a duration of at most [`MAX`]; `key` names the config
/// key or flag in the error.
pub fn parse(key: &str, value: &str) -> Result<Duration, DurationError> {
    let error = |reason: String| DurationError {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let d = humantime::parse_duration(value.trim()).map_err(|e| error(e.to_string()))?;
    if d > MAX {
        return Err(error("longer than ten years, the longest accepted".into()));
    }
    Ok(d)
}

/// Formats a duration the way `parse` reads it.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected_ms: Option<u64>) {
        let got = parse("interval", input).ok().map(|d| d.as_millis() as u64);
        assert_eq!(got, expected_ms, "input {input:?}");
    }

    #[test]
    fn parses_operator_durations() {
        check("10s", Some(10_000));
        check("1s", Some(1_000));
        check("500ms", Some(500));
        check("1m", Some(60_000));
        check("1h30m", Some(5_400_000));
        check(" 2s ", Some(2_000));
        check("ten seconds", None);
        check("10", None);
        check("3650days", Some(3650 * 86_400_000));
        check("3651days", None);
        check("100000000000years", None);
        check("", None);
    }

    #[test]
    fn error_names_key_and_value() {
        let err = parse("interval", "soon").unwrap_err().to_string();
        assert!(
            err.starts_with("interval: invalid duration \"soon\""),
            "{err}"
        );
    }
}
