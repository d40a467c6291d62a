//! The arguments of the query and alert APIs as the collector accepts
//! them: time ranges and steps of QueryRange, the limit of AlertHistory.
//! Pure, so the `api_args` fuzz target checks them without a collector.
//! Every bound here exists so that no request can overflow the arithmetic
//! behind it or ask for more than an answer can hold.

/// Most points per series a QueryRange with a step may return (as
/// Prometheus' 11,000).
pub const MAX_BUCKETS: i64 = 11_000;

/// Longest range of raw points (step 0) one query may read: 31 days. With
/// the series limits (`[limits]`) this bounds what one answer can hold.
pub const MAX_RAW_SPAN_MS: i64 = 31 * 86_400_000;

/// History lines an AlertHistory answer holds when it asks for none.
pub const HISTORY_DEFAULT: usize = 1_000;

/// Most history lines one AlertHistory answer holds.
pub const HISTORY_LIMIT: usize = 10_000;

/// Checks a QueryRange's range and step; the error names the field.
/// `grouped`: whether the request groups series (needs a step).
pub fn check_range(start_ms: i64, end_ms: i64, step_ms: i64, grouped: bool) -> Result<(), String> {
    if end_ms < start_ms {
        return Err(format!("end_ms {end_ms} is before start_ms {start_ms}"));
    }
    if step_ms < 0 {
        return Err(format!("step_ms {step_ms} is negative"));
    }
    if step_ms == 0 && grouped {
        return Err("step_ms 0 (raw points) cannot be combined with group".into());
    }
    // In i128: `end - start` over the whole i64 range does not fit.
    let span = i128::from(end_ms) - i128::from(start_ms);
    if step_ms > 0 && span / i128::from(step_ms) > i128::from(MAX_BUCKETS) {
        return Err(format!(
            "step_ms {step_ms} over {span} ms gives more than {MAX_BUCKETS} points per series; raise the step"
        ));
    }
    if step_ms == 0 && span > i128::from(MAX_RAW_SPAN_MS) {
        return Err(format!(
            "step_ms 0 (raw points) over {span} ms: at most {MAX_RAW_SPAN_MS} ms (31 days) of raw points per query; give a step"
        ));
    }
    Ok(())
}

/// Widens `[start, end]` to the whole `step` buckets it touches (`step`
/// > 0), saturating at the ends of i64.
pub fn whole_buckets(start_ms: i64, end_ms: i64, step_ms: i64) -> (i64, i64) {
    let start = start_ms.div_euclid(step_ms).saturating_mul(step_ms);
    let end = end_ms
        .div_euclid(step_ms)
        .saturating_mul(step_ms)
        .saturating_add(step_ms - 1);
    (start, end)
}

/// The number of history lines to answer for a requested `limit` (0: the
/// default), at most [`HISTORY_LIMIT`].
pub fn history_limit(limit: u32) -> usize {
    match limit {
        0 => HISTORY_DEFAULT,
        n => usize::try_from(n).unwrap_or(usize::MAX).min(HISTORY_LIMIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_at_the_ends_of_i64_are_judged_without_overflow() {
        assert!(
            check_range(i64::MIN, i64::MAX, 0, false)
                .unwrap_err()
                .contains("step_ms 0")
        );
        assert!(
            check_range(i64::MIN, i64::MAX, 1, false)
                .unwrap_err()
                .contains("raise the step")
        );
        assert!(check_range(i64::MIN, i64::MAX, i64::MAX, false).is_ok());
        assert_eq!(whole_buckets(i64::MIN, i64::MAX, i64::MAX).1, i64::MAX);
        assert!(check_range(0, 3_600_000, 0, false).is_ok());
        assert!(
            check_range(0, 3_600_000, 0, true)
                .unwrap_err()
                .contains("group")
        );
        assert_eq!(history_limit(0), HISTORY_DEFAULT);
        assert_eq!(history_limit(u32::MAX), HISTORY_LIMIT);
        assert_eq!(history_limit(7), 7);
    }
}
