//! The gRPC `AlertService` over an [`Alerter`].

use std::sync::Arc;

use nightjar_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use nightjar_alerting::alerter::{Alerter, WatchEvent, now_ms};
use nightjar_alerting::engine::Alert;
use nightjar_alerting::silence::Silence;
use nightjar_alerting::store::HistoryRecord;

/// The alert service.
pub struct AlertApi {
    alerter: Arc<Alerter>,
}

impl AlertApi {
    /// Serves `alerter`.
    pub fn new(alerter: Arc<Alerter>) -> AlertApi {
        AlertApi { alerter }
    }
}

/// Domain alert → wire alert.
pub fn alert_to_wire(a: &Alert, silenced_by: Option<String>) -> pb::Alert {
    let state = if a.state.flapping {
        "flapping"
    } else if a.state.level.is_some() {
        "firing"
    } else if a.state.is_pending() {
        "pending"
    } else {
        "ok"
    };
    pb::Alert {
        id: a.id.clone(),
        rule: a.rule.clone(),
        series: a.series.clone(),
        labels: a
            .labels
            .iter()
            .map(|(k, v)| pb::Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        state: state.into(),
        severity: a.state.level.map_or("", |l| l.as_str()).into(),
        value: a.state.value,
        started_ms: a.state.started_ms,
        changed_ms: a.state.changed_ms,
        summary: a.summary.clone(),
        runbook: a.runbook.clone(),
        acked_by: a.ack.as_ref().map(|k| k.by.clone()).unwrap_or_default(),
        ack_note: a.ack.as_ref().map(|k| k.note.clone()).unwrap_or_default(),
        silenced_by: silenced_by.unwrap_or_default(),
    }
}

fn silence_to_wire(s: Silence) -> pb::Silence {
    pb::Silence {
        id: s.id,
        matchers: s.matchers,
        starts_ms: s.starts_ms,
        ends_ms: s.ends_ms,
        author: s.author,
        comment: s.comment,
        created_ms: s.created_ms,
    }
}

fn history_to_wire(h: HistoryRecord) -> pb::HistoryEntry {
    pb::HistoryEntry {
        at_ms: h.at_ms,
        alert_id: h.alert_id,
        rule: h.rule,
        kind: h.kind,
        severity: h.severity.map_or("", |l| l.as_str()).into(),
        value: h.value,
        detail: h.detail,
    }
}

fn blocking_error(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("alert task failed: {e}"))
}

#[tonic::async_trait]
impl pb::alert_service_server::AlertService for AlertApi {
    async fn list_alerts(
        &self,
        _: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let alerts = self
            .alerter
            .active(now_ms())
            .into_iter()
            .map(|(a, silenced)| alert_to_wire(&a, silenced))
            .collect();
        Ok(Response::new(pb::ListAlertsResponse { alerts }))
    }

    async fn alert_history(
        &self,
        request: Request<pb::AlertHistoryRequest>,
    ) -> Result<Response<pb::AlertHistoryResponse>, Status> {
        let req = request.into_inner();
        let limit = nightjar_model::api_args::history_limit(req.limit);
        let alerter = self.alerter.clone();
        let records = tokio::task::spawn_blocking(move || {
            // The store reads newest first and stops at `limit`.
            let alert_id = Some(req.alert_id.as_str()).filter(|id| !id.is_empty());
            alerter.history(req.since_ms, limit, alert_id)
        })
        .await
        .map_err(blocking_error)?
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::AlertHistoryResponse {
            entries: records.into_iter().map(history_to_wire).collect(),
        }))
    }

    type WatchAlertsStream = ReceiverStream<Result<pb::AlertEvent, Status>>;

    async fn watch_alerts(
        &self,
        _: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let mut events = self.alerter.subscribe();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let event: WatchEvent = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let status = Status::data_loss(format!(
                            "watcher fell behind by {n} events; reconnect"
                        ));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let wire = pb::AlertEvent {
                    at_ms: event.at_ms,
                    kind: event.kind,
                    alert: Some(alert_to_wire(&event.alert, None)),
                };
                if tx.send(Ok(wire)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let req = request.into_inner();
        if req.by.trim().is_empty() {
            return Err(Status::invalid_argument("by: say who acknowledges"));
        }
        let alerter = self.alerter.clone();
        let alert =
            tokio::task::spawn_blocking(move || alerter.ack(&req.id, &req.by, &req.note, now_ms()))
                .await
                .map_err(blocking_error)?
                .map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::AckResponse {
            alert: Some(alert_to_wire(&alert, None)),
        }))
    }

    async fn add_silence(
        &self,
        request: Request<pb::AddSilenceRequest>,
    ) -> Result<Response<pb::AddSilenceResponse>, Status> {
        let req = request.into_inner();
        if req.author.trim().is_empty() {
            return Err(Status::invalid_argument("author: say who silences"));
        }
        let now = now_ms();
        let silence = Silence {
            id: String::new(),
            matchers: req.matchers,
            starts_ms: if req.starts_ms == 0 {
                now
            } else {
                req.starts_ms
            },
            ends_ms: req.ends_ms,
            author: req.author,
            comment: req.comment,
            created_ms: now,
        };
        let alerter = self.alerter.clone();
        let silence = tokio::task::spawn_blocking(move || alerter.add_silence(silence, now))
            .await
            .map_err(blocking_error)?
            .map_err(Status::invalid_argument)?;
        Ok(Response::new(pb::AddSilenceResponse {
            silence: Some(silence_to_wire(silence)),
        }))
    }

    async fn list_silences(
        &self,
        request: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let silences = self
            .alerter
            .silences(now_ms(), request.into_inner().include_expired)
            .into_iter()
            .map(silence_to_wire)
            .collect();
        Ok(Response::new(pb::ListSilencesResponse { silences }))
    }

    async fn expire_silence(
        &self,
        request: Request<pb::ExpireSilenceRequest>,
    ) -> Result<Response<pb::ExpireSilenceResponse>, Status> {
        let id = request.into_inner().id;
        let alerter = self.alerter.clone();
        let silence = tokio::task::spawn_blocking(move || alerter.expire_silence(&id, now_ms()))
            .await
            .map_err(blocking_error)?
            .map_err(Status::not_found)?;
        Ok(Response::new(pb::ExpireSilenceResponse {
            silence: Some(silence_to_wire(silence)),
        }))
    }

    async fn reload_rules(
        &self,
        _: Request<pb::ReloadRulesRequest>,
    ) -> Result<Response<pb::ReloadRulesResponse>, Status> {
        let alerter = self.alerter.clone();
        let count = tokio::task::spawn_blocking(move || alerter.reload_rules(now_ms()))
            .await
            .map_err(blocking_error)?
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::ReloadRulesResponse {
            rules: count as u32,
        }))
    }
}

#[cfg(test)]
mod tests {
    use nightjar_proto::v1 as pb;

    use crate::testing::{Options, TestCollector, now_ms, send, wire_batch};

    const RULES: &str = "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\nrecovery = 40\nsummary = \"{{host}} at {{value}}\"\n";

    async fn firing() -> (TestCollector, i64) {
        let c = TestCollector::with(Options {
            rules: Some(RULES),
            ..Options::default()
        })
        .await;
        let t = now_ms();
        let acks = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("temp", t, 70.0)])],
        )
        .await;
        assert!(acks[0].is_ok());
        (c, t)
    }

    #[tokio::test]
    async fn a_crossing_lists_as_firing_and_an_ack_is_recorded() {
        let (c, _) = firing().await;
        let mut api = c.alerts();
        let alerts = api
            .list_alerts(pb::ListAlertsRequest {})
            .await
            .unwrap()
            .into_inner()
            .alerts;
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(
            (
                alert.rule.as_str(),
                alert.state.as_str(),
                alert.severity.as_str()
            ),
            ("hot", "firing", "warning")
        );
        assert_eq!(alert.summary, "web-1 at 70");

        let refused = api
            .ack(pb::AckRequest {
                id: alert.id.clone(),
                by: " ".into(),
                note: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let unknown = api
            .ack(pb::AckRequest {
                id: "nope".into(),
                by: "ana".into(),
                note: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::FailedPrecondition);
        let acked = api
            .ack(pb::AckRequest {
                id: alert.id.clone(),
                by: "ana".into(),
                note: "looking".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .alert
            .unwrap();
        assert_eq!(
            (acked.acked_by.as_str(), acked.ack_note.as_str()),
            ("ana", "looking")
        );

        let history = api
            .alert_history(pb::AlertHistoryRequest {
                alert_id: alert.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
        assert_eq!(kinds, vec!["fired", "acknowledged"]);
        assert!(history[1].detail.contains("ana"), "{}", history[1].detail);
    }

    #[tokio::test]
    async fn watchers_see_transitions_as_they_are_committed() {
        let (c, t) = firing().await;
        let mut api = c.alerts();
        let mut events = api
            .watch_alerts(pb::WatchAlertsRequest {})
            .await
            .unwrap()
            .into_inner();
        let acks = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 2, &[("temp", t + 10_000, 20.0)])],
        )
        .await;
        assert!(acks[0].is_ok());
        let event = events.message().await.unwrap().expect("an event");
        assert_eq!(event.kind, "resolved");
        assert_eq!(event.alert.unwrap().rule, "hot");
    }

    #[tokio::test]
    async fn silences_are_validated_listed_and_expired() {
        let (c, _) = firing().await;
        let mut api = c.alerts();
        let now = now_ms();
        let add = |matchers: Vec<&str>, author: &str| pb::AddSilenceRequest {
            matchers: matchers.into_iter().map(String::from).collect(),
            starts_ms: 0,
            ends_ms: now + 3_600_000,
            author: author.into(),
            comment: "deploy".into(),
        };
        let no_author = api
            .add_silence(add(vec!["host=web-1"], ""))
            .await
            .unwrap_err();
        assert_eq!(no_author.code(), tonic::Code::InvalidArgument);
        let bad = api
            .add_silence(add(vec!["host=~("], "ana"))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let none = api.add_silence(add(vec![], "ana")).await.unwrap_err();
        assert!(none.message().contains("matcher"), "{}", none.message());

        let silence = api
            .add_silence(add(vec!["host=web-1"], "ana"))
            .await
            .unwrap()
            .into_inner()
            .silence
            .unwrap();
        let alerts = api
            .list_alerts(pb::ListAlertsRequest {})
            .await
            .unwrap()
            .into_inner()
            .alerts;
        assert_eq!(alerts[0].silenced_by, format!("silence {}", silence.id));
        let listed = api
            .list_silences(pb::ListSilencesRequest {
                include_expired: false,
            })
            .await
            .unwrap()
            .into_inner()
            .silences;
        assert_eq!(listed.len(), 1);
        let missing = api
            .expire_silence(pb::ExpireSilenceRequest { id: "s0".into() })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        api.expire_silence(pb::ExpireSilenceRequest {
            id: silence.id.clone(),
        })
        .await
        .unwrap();
        let listed = api
            .list_silences(pb::ListSilencesRequest {
                include_expired: false,
            })
            .await
            .unwrap()
            .into_inner()
            .silences;
        assert!(listed.is_empty(), "expired: {listed:?}");
        // Both changes are in the store, not only in memory.
        use nightjar_alerting::store::AlertStore as _;
        let stored = c.alert_store.silences().unwrap();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].ends_ms <= now_ms());
    }
}
