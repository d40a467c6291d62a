//! The gRPC `AlertService` over an [`Alerter`].

use std::sync::Arc;

use nightjar_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::engine::Alert;
use super::service::{Alerter, WatchEvent, now_ms};
use super::silence::Silence;
use super::store::HistoryRecord;

/// Default and largest number of history entries in one answer.
const HISTORY_LIMIT: usize = 10_000;

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
        let limit = match req.limit {
            0 => 1000,
            n => (n as usize).min(HISTORY_LIMIT),
        };
        let alerter = self.alerter.clone();
        let records = tokio::task::spawn_blocking(move || {
            // Filter first, then keep the newest `limit`.
            alerter.history(req.since_ms, usize::MAX).map(|all| {
                let mut kept: Vec<HistoryRecord> = all
                    .into_iter()
                    .filter(|h| req.alert_id.is_empty() || h.alert_id == req.alert_id)
                    .collect();
                let skip = kept.len().saturating_sub(limit);
                kept.split_off(skip)
            })
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
