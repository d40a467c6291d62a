//! Health: the collector's gRPC health service, and the HTTP status port
//! (`/healthz`, `/metrics` in the Prometheus text format) on both daemons.

use nightjar_e2e::*;

#[test]
fn collector_serves_healthz_metrics_and_grpc_health() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let addr = poll("the status port", || {
        status_addr(&collector.proc.stderr_lines())
    });
    // Healthy once the first alert sweep completed (within a second).
    let body = poll("a healthy /healthz", || {
        let (status, body) = http_get(addr, "/healthz");
        (status == 200).then_some(body)
    });
    assert_eq!(body, "ok\n");
    let (status, metrics) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE collector_samples_stored_total counter\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE collector_series gauge\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("collector_samples_rejected_total{host=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("reason=\"timestamp_out_of_range\"} 0\n"),
        "{metrics}"
    );
    assert_eq!(http_get(addr, "/nope").0, 404);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let serving = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(collector.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut statuses = Vec::new();
        for service in ["", "nightjar.v1.IngestService", "nightjar.v1.QueryService"] {
            let r = client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            statuses.push(r.status);
        }
        statuses
    });
    let serving_code = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(serving, [serving_code; 3]);
}

#[test]
fn agent_serves_healthz_after_its_first_sample_and_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let agent = start_agent(
        &collector.url(),
        &unique_host("health"),
        &dir.path().join("state"),
        &[],
    );
    let addr = poll("the agent's status port", || {
        status_addr(&agent.stderr_lines())
    });
    poll("a healthy agent", || {
        (http_get(addr, "/healthz").0 == 200).then_some(())
    });
    let (status, metrics) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE agent_samples_total counter\n"),
        "{metrics}"
    );
    assert!(metrics.contains("agent_spool_batches"), "{metrics}");
}
