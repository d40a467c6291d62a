//! An in-process collector for unit tests: the real ingest, query and
//! alert services with their authentication, over [`MemoryStorage`] and
//! [`MemoryAlertStore`], served on an in-memory pipe
//! (`nightjar_common::in_process`). No sockets, no data directory.

use std::sync::Arc;

use nightjar_alerting::alerter::{Alerter, RuleSource};
use nightjar_alerting::config::Alerting;
use nightjar_alerting::rules::parse_rules;
use nightjar_alerting::store::MemoryAlertStore;
use nightjar_model::limits::Limits;
use nightjar_proto::v1 as pb;
use nightjar_storage::memory::MemoryStorage;
use tonic::transport::Channel;

use crate::auth::{AuthLog, TokenTable};
use crate::board::ServiceCatalog;
use crate::server::Wiring;
use crate::telemetry::IngestCounters;

/// What a test collector is built from.
#[derive(Default)]
pub struct Options {
    /// `[limits]`.
    pub limits: Limits,
    /// A token file's text, for `[auth]`.
    pub tokens: Option<String>,
    /// A rule file's text; the built-in rules without it.
    pub rules: Option<&'static str>,
    /// `[alerting]`.
    pub alerting: Alerting,
    /// A service file's text; no services without it.
    pub services: Option<&'static str>,
}

/// A collector in this process.
pub struct TestCollector {
    /// Its series storage.
    pub storage: Arc<MemoryStorage>,
    /// Its alert store.
    pub alert_store: Arc<MemoryAlertStore>,
    /// Its alerting system.
    pub alerter: Arc<Alerter>,
    /// Its ingest counters.
    pub counters: Arc<IngestCounters>,
    /// Its refusal counters.
    pub auth_log: Arc<AuthLog>,
    /// Its declared services.
    pub catalog: Arc<ServiceCatalog>,
    /// A client channel to its services.
    pub channel: Channel,
}

impl TestCollector {
    /// Starts one with default options.
    pub async fn start() -> TestCollector {
        TestCollector::with(Options::default()).await
    }

    /// Starts one.
    pub async fn with(options: Options) -> TestCollector {
        let storage = Arc::new(MemoryStorage::new());
        let alert_store = Arc::new(MemoryAlertStore::new());
        let rules = match options.rules {
            Some(text) => RuleSource::Given(parse_rules("test-rules.toml", text).expect("rules")),
            None => RuleSource::Defaults,
        };
        let alerter = Arc::new(
            Alerter::open(alert_store.clone(), rules, options.alerting).expect("alerter opens"),
        );
        let tokens = options
            .tokens
            .map(|text| Arc::new(TokenTable::parse("tokens", &text).expect("token file parses")));
        let counters = Arc::new(IngestCounters::default());
        let auth_log = Arc::new(AuthLog::default());
        let catalog = match options.services {
            None => ServiceCatalog::default(),
            Some(text) => {
                let parsed = nightjar_model::service::parse_services("test-services.toml", text)
                    .expect("services");
                ServiceCatalog::of(parsed.into_iter().map(|(s, _)| s).collect())
            }
        };
        let catalog = Arc::new(catalog);
        alerter.set_services(catalog.services().to_vec());
        let wiring = Wiring {
            storage: storage.clone(),
            alerter: alerter.clone(),
            counters: counters.clone(),
            limits: options.limits,
            auth_log: auth_log.clone(),
            tokens,
            catalog: catalog.clone(),
            timeline: Arc::new(nightjar_alerting::availability::MemoryTimelineStore::default()),
            mtls: false,
            capacity_limits: Vec::new(),
            correlations: Vec::new(),
        };
        let channel = nightjar_common::in_process::channel(wiring.routes()).await;
        TestCollector {
            storage,
            alert_store,
            alerter,
            counters,
            auth_log,
            catalog,
            channel,
        }
    }

    /// An ingest client.
    pub fn ingest(&self) -> pb::ingest_service_client::IngestServiceClient<Channel> {
        pb::ingest_service_client::IngestServiceClient::new(self.channel.clone())
    }

    /// A query client.
    pub fn query(&self) -> pb::query_service_client::QueryServiceClient<Channel> {
        pb::query_service_client::QueryServiceClient::new(self.channel.clone())
    }

    /// An alert client.
    pub fn alerts(&self) -> pb::alert_service_client::AlertServiceClient<Channel> {
        pb::alert_service_client::AlertServiceClient::new(self.channel.clone())
    }

    /// A board client.
    pub fn board(&self) -> pb::board_service_client::BoardServiceClient<Channel> {
        pb::board_service_client::BoardServiceClient::new(self.channel.clone())
    }
}

/// The wall clock in epoch ms (sample timestamps must be near it).
pub fn now_ms() -> i64 {
    nightjar_alerting::alerter::now_ms()
}

/// A wire batch of gauges of host `host`, each `(metric, timestamp ms, value)`.
pub fn wire_batch(agent: &str, host: &str, seq: u64, samples: &[(&str, i64, f64)]) -> pb::Batch {
    pb::Batch {
        agent_id: agent.into(),
        host: host.into(),
        seq,
        interval_ms: 10_000,
        samples: samples
            .iter()
            .map(|(metric, t, v)| pb::Sample {
                metric: (*metric).into(),
                labels: vec![pb::Label {
                    name: "host".into(),
                    value: host.into(),
                }],
                timestamp_ms: *t,
                value: Some(pb::sample::Value::Gauge(*v)),
            })
            .collect(),
    }
}

/// Sends `batches` on one ingest stream and returns every answer until the
/// collector ends the stream (or all batches are answered).
pub async fn send(
    collector: &TestCollector,
    token: Option<&str>,
    batches: Vec<pb::Batch>,
) -> Vec<Result<pb::Ack, tonic::Status>> {
    let expected = batches.len();
    let mut request = tonic::Request::new(tokio_stream::iter(batches));
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
    }
    let mut answers = Vec::new();
    let mut stream = match collector.ingest().stream(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return vec![Err(status)],
    };
    while answers.len() < expected {
        match stream.message().await {
            Ok(Some(ack)) => answers.push(Ok(ack)),
            Ok(None) => break,
            Err(status) => {
                answers.push(Err(status));
                break;
            }
        }
    }
    answers
}
