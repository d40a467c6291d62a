//! Conversion of sampled data to wire types. API boundary: prost types are
//! built here and in `transport`, nowhere else.

use std::collections::BTreeMap;

use nightjar_proto::v1 as pb;

use crate::sample::{AppSample, AppValue, Sample};

/// What every batch of this agent carries besides its samples.
#[derive(Clone, Debug)]
pub struct BatchHeader {
    /// The agent's stable id.
    pub agent_id: String,
    /// The host label value.
    pub host: String,
    /// The sampling interval in ms.
    pub interval_ms: u64,
    /// Static labels from the config.
    pub labels: BTreeMap<String, String>,
}

/// Builds the wire batch: every sample gets `host`, the static labels and
/// the tick's timestamp. An application sample's label that a static label
/// also sets is left out (the config wins).
pub fn batch_to_wire(
    header: &BatchHeader,
    seq: u64,
    timestamp_ms: i64,
    samples: Vec<Sample>,
    app: Vec<AppSample>,
) -> pb::Batch {
    let label = |name: &str, value: &str| pb::Label {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let labelled = |own: &mut dyn Iterator<Item = (&str, &str)>, n: usize| {
        let mut labels = Vec::with_capacity(n + header.labels.len() + 1);
        labels.push(label("host", &header.host));
        labels.extend(header.labels.iter().map(|(n, v)| label(n, v)));
        labels.extend(
            own.filter(|(n, _)| !header.labels.contains_key(*n))
                .map(|(n, v)| label(n, v)),
        );
        labels
    };
    let mut wire = Vec::with_capacity(samples.len() + app.len());
    wire.extend(samples.into_iter().map(|s| pb::Sample {
        metric: s.metric.to_owned(),
        labels: labelled(
            &mut s.labels.iter().map(|(n, v)| (*n, v.as_str())),
            s.labels.len(),
        ),
        timestamp_ms,
        value: Some(pb::sample::Value::Gauge(s.value)),
    }));
    wire.extend(app.into_iter().map(|s| pb::Sample {
        labels: labelled(
            &mut s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            s.labels.len(),
        ),
        metric: s.metric,
        timestamp_ms,
        value: Some(match s.value {
            AppValue::Gauge(v) => pb::sample::Value::Gauge(v),
            AppValue::Histogram(h) => pb::sample::Value::Histogram(pb::Histogram {
                hdr_v2: h.to_wire(),
                unit: h.unit(),
            }),
        }),
    }));
    let samples = wire;
    pb::Batch {
        agent_id: header.agent_id.clone(),
        host: header.host.clone(),
        seq,
        samples,
        interval_ms: header.interval_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_gets_host_static_labels_and_timestamp() {
        let header = BatchHeader {
            agent_id: "id".into(),
            host: "web-1".into(),
            interval_ms: 10_000,
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        };
        let b = batch_to_wire(
            &header,
            7,
            1_000,
            vec![Sample::labelled("load_average", "period", "1m", 0.5)],
            Vec::new(),
        );
        assert_eq!(b.seq, 7);
        let s = &b.samples[0];
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            labels,
            [("host", "web-1"), ("env", "prod"), ("period", "1m")]
        );
        assert_eq!(s.timestamp_ms, 1_000);
        assert_eq!(s.value, Some(pb::sample::Value::Gauge(0.5)));
    }
}
