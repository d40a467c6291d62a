//! Bytes off the wire → the arguments of QueryRange, AlertHistory and an
//! ingest batch's header, judged as the collector judges them: never a
//! panic, and whatever is accepted stays inside the bounds the arithmetic
//! behind it needs (bucket counts, raw spans, history size, seq and
//! interval).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_model::api_args::{
    HISTORY_LIMIT, MAX_BUCKETS, MAX_RAW_SPAN_MS, check_range, history_limit, whole_buckets,
};
use nightjar_model::convert::{MAX_INTERVAL_MS, MAX_SEQ, check_batch_header, selector_from_wire};
use nightjar_proto::v1 as pb;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = pb::QueryRangeRequest::decode(data) {
        let _ = selector_from_wire(req.selector);
        let (start, end, step) = (req.start_ms, req.end_ms, req.step_ms);
        if check_range(start, end, step, req.group.is_some()).is_ok() {
            let span = i128::from(end) - i128::from(start);
            assert!(span >= 0);
            if step > 0 {
                let (s, e) = whole_buckets(start, end, step);
                assert!(s <= start && e >= end, "buckets cover the range");
                let buckets = (i128::from(e) - i128::from(s)) / i128::from(step) + 1;
                assert!(buckets <= i128::from(MAX_BUCKETS) + 2, "{buckets} buckets");
            } else {
                assert!(span <= i128::from(MAX_RAW_SPAN_MS));
            }
        }
    }
    if let Ok(req) = pb::AlertHistoryRequest::decode(data) {
        assert!(history_limit(req.limit) <= HISTORY_LIMIT);
    }
    if let Ok(batch) = pb::Batch::decode(data)
        && check_batch_header(&batch).is_ok()
    {
        assert!((1..=MAX_SEQ).contains(&batch.seq));
        assert!(batch.seq.checked_add(1).is_some());
        assert!(batch.interval_ms <= MAX_INTERVAL_MS);
        // host_down waits up to 1,000 intervals without overflowing.
        assert!(1_000i64.checked_mul(batch.interval_ms as i64).is_some());
    }
});
