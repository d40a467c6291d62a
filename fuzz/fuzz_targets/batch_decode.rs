//! Bytes off the wire → protobuf `Batch` → validated domain batch: never a
//! panic, and every sample either kept or rejected with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_model::convert::batch_from_wire;
use nightjar_model::limits::Limits;
use nightjar_proto::v1 as pb;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::Batch::decode(data) else {
        return;
    };
    let n = batch.samples.len();
    let (kept, rejected) = batch_from_wire(batch, &Limits::default(), 1_700_000_000_000);
    assert_eq!(kept.samples.len() + rejected.len(), n);
    for sample in &kept.samples {
        assert!(sample.point.value.is_finite());
        assert_eq!(sample.series.labels.get("host"), Some(kept.host.as_str()));
    }
});
