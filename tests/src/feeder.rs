//! Sends hand-made batches to a collector over real gRPC, playing an agent
//! whose readings the test chooses (threshold crossings, oscillations,
//! history with known timestamps, bad samples). Each send waits for the ack.

use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::v1 as pb;
use pb::ingest_service_client::IngestServiceClient;

/// A fake agent for one host.
pub struct Feeder {
    rt: tokio::runtime::Runtime,
    url: String,
    host: String,
    agent_id: String,
    seq: u64,
    last_ts: i64,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Feeder {
    /// A feeder sending as `host` to the collector at `url`.
    pub fn new(url: &str, host: &str) -> Feeder {
        Feeder {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            url: url.to_owned(),
            host: host.to_owned(),
            agent_id: format!("feeder-{host}"),
            seq: 0,
            last_ts: 0,
        }
    }

    /// A gauge sample of `metric{labels, host}`.
    pub fn sample(
        &self,
        metric: &str,
        labels: &[(&str, &str)],
        ts_ms: i64,
        value: f64,
    ) -> pb::Sample {
        let mut labels: Vec<pb::Label> = labels
            .iter()
            .map(|(k, v)| pb::Label {
                name: (*k).into(),
                value: (*v).into(),
            })
            .collect();
        labels.push(pb::Label {
            name: "host".into(),
            value: self.host.clone(),
        });
        pb::Sample {
            metric: metric.into(),
            labels,
            timestamp_ms: ts_ms,
            value: Some(pb::sample::Value::Gauge(value)),
        }
    }

    /// Sends one batch of `samples` on a stream of its own; the collector's
    /// ack, or the status that ended the stream.
    pub fn send_batch(&mut self, samples: Vec<pb::Sample>) -> Result<pb::Ack, tonic::Status> {
        self.seq += 1;
        let batch = pb::Batch {
            agent_id: self.agent_id.clone(),
            host: self.host.clone(),
            seq: self.seq,
            samples,
            interval_ms: 1000,
        };
        let url = self.url.clone();
        self.rt.block_on(async move {
            let mut client = IngestServiceClient::connect(url)
                .await
                .expect("collector reachable")
                .max_encoding_message_size(usize::MAX);
            let mut acks = client.stream(tokio_stream::once(batch)).await?.into_inner();
            match acks.message().await? {
                Some(ack) => Ok(ack),
                None => Err(tonic::Status::unknown("stream ended without an ack")),
            }
        })
    }

    /// Sends one sample of `metric{labels, host}` = `value` at `ts_ms` and
    /// waits for its ack.
    pub fn send_at(&mut self, metric: &str, labels: &[(&str, &str)], ts_ms: i64, value: f64) {
        let sample = self.sample(metric, labels, ts_ms, value);
        let ack = self.send_batch(vec![sample]).expect("batch acked");
        assert!(
            ack.acked_through >= self.seq,
            "ack {} below seq {}",
            ack.acked_through,
            self.seq
        );
        assert_eq!(
            ack.rejected_samples, 0,
            "sample rejected: {}",
            ack.first_rejection
        );
    }

    /// Sends `value` stamped now.
    pub fn send(&mut self, metric: &str, labels: &[(&str, &str)], value: f64) {
        // Strictly increasing timestamps even within one millisecond.
        let ts = now_ms().max(self.last_ts + 1);
        self.last_ts = ts;
        self.send_at(metric, labels, ts, value);
    }
}
