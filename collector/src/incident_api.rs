//! The gRPC `IncidentService` (docs/incidents.md): incidents, their
//! timelines and reviews, follow-ups, changes, and the incident and noise
//! reports, over the [`Alerter`] that keeps them. An impact set on an
//! incident becomes the availability adjustment of its services' outages
//! in its span, so the availability report counts what was assessed.

use std::sync::Arc;

use nightjar_alerting::alerter::{
    Alerter, FollowUpPatch, IncidentPatch, IncidentView, NewFollowUp, now_ms,
};
use nightjar_alerting::availability::{TimelineStore, report_of};
use nightjar_alerting::incident::{
    Category, ChangeRecord, FollowUp, FollowUpKind, FollowUpState, Impact, Incident, IncidentEvent,
    Recurring, Risk, parse_due, parse_follow_up_id, parse_incident_id, with_dependents,
};
use nightjar_alerting::incident_report::{self, IncidentReport};
use nightjar_model::availability::timeline::Adjustment;
use nightjar_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::board::ServiceCatalog;

/// Most history lines the noise report reads (newest first).
const NOISE_HISTORY_LIMIT: usize = 1_000_000;

/// The incident service (its parts are shared handles: cloning it is
/// cheap, so blocking tasks take a copy).
#[derive(Clone)]
pub struct IncidentApi {
    alerter: Arc<Alerter>,
    timeline: Arc<dyn TimelineStore>,
    catalog: Arc<ServiceCatalog>,
}

impl IncidentApi {
    /// Serves `alerter`'s incidents; impacts adjust `timeline`'s outages.
    pub fn new(
        alerter: Arc<Alerter>,
        timeline: Arc<dyn TimelineStore>,
        catalog: Arc<ServiceCatalog>,
    ) -> IncidentApi {
        IncidentApi {
            alerter,
            timeline,
            catalog,
        }
    }
}

fn level(l: Option<nightjar_alerting::state::Level>) -> String {
    l.map_or(String::new(), |l| l.as_str().to_owned())
}

/// Domain incident → wire incident.
pub fn incident_to_wire(i: &Incident) -> pb::Incident {
    let r = &i.review;
    pb::Incident {
        id: i.id(),
        title: i.title.clone(),
        state: i.state.as_str().into(),
        severity: i.severity.as_str().into(),
        services: i.services.clone(),
        hosts: i.hosts(),
        alerts: i
            .alerts
            .iter()
            .map(|a| pb::IncidentAlert {
                alert_id: a.alert_id.clone(),
                rule: a.rule.clone(),
                host: a.host.clone(),
                series: a.series.clone(),
                summary: a.summary.clone(),
                severity: level(a.severity),
                worst: a.worst.as_str().into(),
                fired_ms: a.fired_ms,
                resolved_ms: a.resolved_ms.unwrap_or(0),
            })
            .collect(),
        firing: i.firing().count() as u32,
        opened_ms: i.opened_ms,
        resolved_ms: i.resolved_ms.unwrap_or(0),
        resolved_by: i.resolved_by.clone(),
        acked_ms: i.acked.as_ref().map_or(0, |a| a.at_ms),
        acked_by: i.acked.as_ref().map_or(String::new(), |a| a.by.clone()),
        ack_note: i.acked.as_ref().map_or(String::new(), |a| a.note.clone()),
        last_note_ms: i.last_note_ms,
        reopened: i.reopened,
        review: Some(pb::IncidentReview {
            summary: r.summary.clone(),
            root_cause: r.root_cause.clone(),
            category: r.category.map_or(String::new(), |c| c.as_str().into()),
            trigger: r.trigger.clone(),
            resolution: r.resolution.clone(),
            detection: r.detection.clone(),
            change_id: r.change_id.clone(),
            lessons: r.lessons.clone(),
            has_impact: r.impact.is_some(),
            user_share: r.impact.map_or(0.0, |i| i.user_share),
            functional_impact: r.impact.map_or(0.0, |i| i.functional),
        }),
    }
}

fn event_to_wire(e: IncidentEvent) -> pb::TimelineEntry {
    pb::TimelineEntry {
        at_ms: e.at_ms,
        kind: e.kind,
        by: e.by,
        alert_id: e.alert_id,
        detail: e.detail,
    }
}

fn change_to_wire(c: ChangeRecord) -> pb::ChangeRecord {
    pb::ChangeRecord {
        id: c.id,
        what: c.what,
        by: c.by,
        services: c.services,
        hosts: c.hosts,
        at_ms: c.at_ms,
        risk: c.risk.as_str().into(),
        backout: c.backout,
        recorded_ms: c.recorded_ms,
    }
}

fn follow_up_to_wire(f: &FollowUp, now: i64) -> pb::FollowUp {
    pb::FollowUp {
        id: f.id(),
        title: f.title.clone(),
        owner: f.owner.clone(),
        due_ms: f.due_ms,
        kind: f.kind.as_str().into(),
        state: f.state.as_str().into(),
        incidents: f.incidents.iter().map(|n| format!("I{n}")).collect(),
        note: f.note.clone(),
        created_ms: f.created_ms,
        updated_ms: f.updated_ms,
        closed_ms: f.closed_ms,
        overdue: f.overdue(now),
    }
}

fn recurring_to_wire(r: &Recurring) -> pb::RecurringIncidents {
    pb::RecurringIncidents {
        key: r.key.clone(),
        incidents: r.incidents.iter().map(|n| format!("I{n}")).collect(),
        has_follow_up: r.has_follow_up,
    }
}

fn incident_id(text: &str) -> Result<u64, Status> {
    parse_incident_id(text).map_err(Status::invalid_argument)
}

fn incident_ids(texts: &[String]) -> Result<Vec<u64>, Status> {
    texts.iter().map(|t| incident_id(t)).collect()
}

/// An alerter refusal: an unknown id is not found, the rest a
/// precondition (or a bad argument, when it names a field).
fn refused(message: String) -> Status {
    if message.contains("no incident") || message.contains("no follow-up") {
        Status::not_found(message)
    } else if message.starts_with("alert store") {
        Status::unavailable(message)
    } else if message.contains(": ") && !message.starts_with("incident I") {
        Status::invalid_argument(message)
    } else {
        Status::failed_precondition(message)
    }
}

fn who(by: &str) -> Result<(), Status> {
    if by.trim().is_empty() {
        Err(Status::invalid_argument("by: say who you are"))
    } else {
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("incident task failed: {e}")))?
}

fn window(from_ms: i64, to_ms: i64, default_ms: i64) -> Result<(i64, i64), Status> {
    let now = now_ms();
    let (from, to) = match (from_ms, to_ms) {
        (0, 0) => (now - default_ms, now),
        (f, 0) => (f, now),
        (f, t) => (f, t),
    };
    if to <= from {
        return Err(Status::invalid_argument(format!(
            "to_ms: {to} is not after from_ms {from}"
        )));
    }
    Ok((from, to))
}

impl IncidentApi {
    /// An operator's command on incident `id` by `by` (both checked), run
    /// on a blocking thread; answers the incident as it is afterwards.
    async fn command(
        &self,
        id: &str,
        by: &str,
        f: impl FnOnce(&Alerter, u64, i64) -> Result<Incident, String> + Send + 'static,
    ) -> Result<Response<pb::IncidentResponse>, Status> {
        who(by)?;
        let number = incident_id(id)?;
        let alerter = self.alerter.clone();
        let i = blocking(move || f(&alerter, number, now_ms()).map_err(refused)).await?;
        Ok(Response::new(pb::IncidentResponse {
            incident: Some(incident_to_wire(&i)),
        }))
    }

    /// The outages inside its span of the services the incident hits
    /// (its own and those depending on them) that have a target, adjusted
    /// to its assessed impact.
    fn adjust_outages(
        &self,
        incident: &Incident,
        impact: Impact,
        by: &str,
    ) -> Result<usize, Status> {
        let services = self.catalog.services();
        let maintenance = self.alerter.maintenance();
        let end = incident.resolved_ms.unwrap_or_else(now_ms);
        let hit = with_dependents(&incident.services, &services);
        let mut adjusted = 0;
        for service in services
            .iter()
            .filter(|s| hit.contains(&s.name) && s.availability.is_some())
        {
            // A day of lead, so an outage begun before the incident keeps
            // its true start (adjustments name an outage by its start).
            let report = report_of(
                &*self.timeline,
                service,
                &maintenance,
                incident.opened_ms - 86_400_000,
                end + 60_000,
            )
            .map_err(|e| Status::unavailable(e.to_string()))?;
            for outage in report.iter().flat_map(|r| &r.outages) {
                if outage.start_ms <= end && outage.end_ms >= incident.opened_ms {
                    let adjustment = Adjustment {
                        outage_start_ms: outage.start_ms,
                        share: impact.user_share,
                        impact: impact.functional,
                        by: by.to_owned(),
                        why: format!("impact assessed on incident {}", incident.id()),
                        at_ms: now_ms(),
                    };
                    self.timeline
                        .adjust(&service.name, &adjustment)
                        .map_err(|e| Status::unavailable(e.to_string()))?;
                    adjusted += 1;
                }
            }
        }
        Ok(adjusted)
    }

    /// Minutes the incident cost its services with a target (weighted),
    /// or None when none has one.
    fn weighted_minutes(&self, incident: &Incident, now: i64) -> Option<f64> {
        let services = self.catalog.services();
        let maintenance = self.alerter.maintenance();
        let end = incident.resolved_ms.unwrap_or(now);
        let hit = with_dependents(&incident.services, &services);
        let mut total = None;
        for service in services
            .iter()
            .filter(|s| hit.contains(&s.name) && s.availability.is_some())
        {
            if let Ok(Some(r)) = report_of(
                &*self.timeline,
                service,
                &maintenance,
                incident.opened_ms,
                end.max(incident.opened_ms + 1),
            ) {
                *total.get_or_insert(0.0) += r.weighted_outage_ms / 60_000.0;
            }
        }
        total
    }
}

fn view_to_wire(v: IncidentView, now: i64) -> pb::GetIncidentResponse {
    let postmortem = incident_report::postmortem(
        &v.incident,
        &v.timeline,
        &v.changes_before,
        &v.follow_ups,
        now,
    );
    pb::GetIncidentResponse {
        incident: Some(incident_to_wire(&v.incident)),
        timeline: v.timeline.into_iter().map(event_to_wire).collect(),
        changes_before: v.changes_before.into_iter().map(change_to_wire).collect(),
        changes_during: v.changes_during.into_iter().map(change_to_wire).collect(),
        follow_ups: v
            .follow_ups
            .iter()
            .map(|f| follow_up_to_wire(f, now))
            .collect(),
        postmortem_markdown: postmortem,
    }
}

fn report_to_wire(r: IncidentReport, now: i64) -> pb::IncidentReportResponse {
    let counts = |v: Vec<(String, usize)>| {
        v.into_iter()
            .map(|(key, count)| pb::CountBy {
                key,
                count: count as u32,
            })
            .collect()
    };
    let min = |ms: f64| ms / 60_000.0;
    pb::IncidentReportResponse {
        incidents: r.incidents as u32,
        by_severity: counts(r.by_severity),
        by_service: counts(r.by_service),
        by_category: counts(r.by_category),
        median_minutes_to_acknowledge: min(r.to_acknowledge.median_ms),
        worst_minutes_to_acknowledge: min(r.to_acknowledge.worst_ms),
        median_minutes_to_restore: min(r.to_restore.median_ms),
        worst_minutes_to_restore: min(r.to_restore.worst_ms),
        acknowledged: r.to_acknowledge.count as u32,
        restored: r.to_restore.count as u32,
        top_talkers: r
            .top_talkers
            .into_iter()
            .map(|t| pb::IncidentTalker {
                id: format!("I{}", t.number),
                title: t.title,
                weighted_minutes: t.weighted_minutes,
                minutes: t.minutes,
            })
            .collect(),
        recurring: r.recurring.iter().map(recurring_to_wire).collect(),
        follow_ups_open: r.follow_ups_open as u32,
        follow_ups_overdue: r.overdue.len() as u32,
        overdue: r
            .overdue
            .iter()
            .map(|f| follow_up_to_wire(f, now))
            .collect(),
    }
}

fn optional_text(field: &str, value: Option<String>) -> Result<Option<String>, Status> {
    match value {
        Some(v) if v.len() > 16_384 => Err(Status::invalid_argument(format!(
            "{field}: {} bytes; at most 16384",
            v.len()
        ))),
        other => Ok(other),
    }
}

#[tonic::async_trait]
impl pb::incident_service_server::IncidentService for IncidentApi {
    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 100,
            n => n.min(10_000) as usize,
        };
        let incidents = self.alerter.incidents(req.open_only, req.since_ms, limit);
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents: incidents.iter().map(incident_to_wire).collect(),
        }))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let number = incident_id(&request.into_inner().id)?;
        let alerter = self.alerter.clone();
        let now = now_ms();
        let view = blocking(move || alerter.incident(number, now).map_err(refused)).await?;
        Ok(Response::new(view_to_wire(view, now)))
    }

    async fn ack_incident(
        &self,
        request: Request<pb::AckIncidentRequest>,
    ) -> Result<Response<pb::IncidentResponse>, Status> {
        let req = request.into_inner();
        let (by, note) = (req.by.clone(), req.note);
        let answer = self
            .command(&req.id, &req.by, move |a, n, now| {
                a.ack_incident(n, &by, &note, now)
            })
            .await?;
        tracing::info!(incident = %answer.get_ref().incident.as_ref().map_or("", |i| i.id.as_str()), "incident acknowledged");
        Ok(answer)
    }

    async fn note_incident(
        &self,
        request: Request<pb::NoteIncidentRequest>,
    ) -> Result<Response<pb::IncidentResponse>, Status> {
        let req = request.into_inner();
        let text = optional_text("text", Some(req.text))?.unwrap_or_default();
        let by = req.by.clone();
        self.command(&req.id, &req.by, move |a, n, now| {
            a.note_incident(n, &by, &text, now)
        })
        .await
    }

    async fn resolve_incident(
        &self,
        request: Request<pb::ResolveIncidentRequest>,
    ) -> Result<Response<pb::IncidentResponse>, Status> {
        let req = request.into_inner();
        let (by, note) = (req.by.clone(), req.note);
        let answer = self
            .command(&req.id, &req.by, move |a, n, now| {
                a.resolve_incident(n, &by, &note, now)
            })
            .await?;
        tracing::info!(incident = %answer.get_ref().incident.as_ref().map_or("", |i| i.id.as_str()), "incident resolved by hand");
        Ok(answer)
    }

    async fn set_incident(
        &self,
        request: Request<pb::SetIncidentRequest>,
    ) -> Result<Response<pb::IncidentResponse>, Status> {
        let req = request.into_inner();
        who(&req.by)?;
        let number = incident_id(&req.id)?;
        let impact = match (req.user_share, req.functional_impact) {
            (Some(user_share), Some(functional)) => Some(Impact {
                user_share,
                functional,
            }),
            (None, None) => None,
            _ => {
                return Err(Status::invalid_argument(
                    "user_share, functional_impact: give both or neither",
                ));
            }
        };
        let patch = IncidentPatch {
            title: optional_text("title", req.title)?,
            summary: optional_text("summary", req.summary)?,
            root_cause: optional_text("root_cause", req.root_cause)?,
            category: req
                .category
                .as_deref()
                .map(Category::parse)
                .transpose()
                .map_err(Status::invalid_argument)?,
            trigger: optional_text("trigger", req.trigger)?,
            resolution: optional_text("resolution", req.resolution)?,
            detection: optional_text("detection", req.detection)?,
            change_id: optional_text("change_id", req.change_id)?,
            lessons: optional_text("lessons", req.lessons)?,
            impact,
        };
        let alerter = self.alerter.clone();
        let by = req.by.clone();
        let i = blocking(move || {
            alerter
                .set_incident(number, &by, patch, now_ms())
                .map_err(refused)
        })
        .await?;
        if let Some(impact) = impact {
            let (api, incident) = (self.clone(), i.clone());
            let n = blocking(move || api.adjust_outages(&incident, impact, &req.by)).await?;
            tracing::info!(incident = %i.id(), outages = n, "incident impact set; outages adjusted");
        }
        Ok(Response::new(pb::IncidentResponse {
            incident: Some(incident_to_wire(&i)),
        }))
    }

    async fn add_follow_up(
        &self,
        request: Request<pb::AddFollowUpRequest>,
    ) -> Result<Response<pb::FollowUpResponse>, Status> {
        let req = request.into_inner();
        let new = NewFollowUp {
            title: req.title,
            owner: req.owner,
            due_ms: if req.due.is_empty() {
                0
            } else {
                parse_due(&req.due).map_err(Status::invalid_argument)?
            },
            kind: if req.kind.is_empty() {
                FollowUpKind::Prevent
            } else {
                FollowUpKind::parse(&req.kind).map_err(Status::invalid_argument)?
            },
            incidents: incident_ids(&req.incidents)?,
            note: req.note,
        };
        let alerter = self.alerter.clone();
        let now = now_ms();
        let f = blocking(move || alerter.add_follow_up(new, now).map_err(refused)).await?;
        Ok(Response::new(pb::FollowUpResponse {
            follow_up: Some(follow_up_to_wire(&f, now)),
        }))
    }

    async fn update_follow_up(
        &self,
        request: Request<pb::UpdateFollowUpRequest>,
    ) -> Result<Response<pb::FollowUpResponse>, Status> {
        let req = request.into_inner();
        let number = parse_follow_up_id(&req.id).map_err(Status::invalid_argument)?;
        let patch = FollowUpPatch {
            title: req.title,
            owner: req.owner,
            due_ms: req
                .due
                .as_deref()
                .map(|d| if d.is_empty() { Ok(0) } else { parse_due(d) })
                .transpose()
                .map_err(Status::invalid_argument)?,
            kind: req
                .kind
                .as_deref()
                .map(FollowUpKind::parse)
                .transpose()
                .map_err(Status::invalid_argument)?,
            state: req
                .state
                .as_deref()
                .map(FollowUpState::parse)
                .transpose()
                .map_err(Status::invalid_argument)?,
            link: incident_ids(&req.link)?,
            note: req.note,
        };
        let alerter = self.alerter.clone();
        let now = now_ms();
        let f = blocking(move || {
            alerter
                .update_follow_up(number, patch, now)
                .map_err(refused)
        })
        .await?;
        Ok(Response::new(pb::FollowUpResponse {
            follow_up: Some(follow_up_to_wire(&f, now)),
        }))
    }

    async fn list_follow_ups(
        &self,
        request: Request<pb::ListFollowUpsRequest>,
    ) -> Result<Response<pb::ListFollowUpsResponse>, Status> {
        let req = request.into_inner();
        let now = now_ms();
        let follow_ups = self.alerter.follow_ups();
        let config = self.alerter.incident_config();
        let from = now - config.recurring_window_ms;
        let incidents = self.alerter.incidents_between(from, now + 1);
        let candidates = nightjar_alerting::incident::recurring(
            &incidents,
            &follow_ups,
            config.recurring_count,
            from,
            now + 1,
        );
        Ok(Response::new(pb::ListFollowUpsResponse {
            follow_ups: follow_ups
                .iter()
                .filter(|f| !req.open_only || f.state.is_open())
                .map(|f| follow_up_to_wire(f, now))
                .collect(),
            candidates: candidates.iter().map(recurring_to_wire).collect(),
        }))
    }

    async fn record_change(
        &self,
        request: Request<pb::RecordChangeRequest>,
    ) -> Result<Response<pb::RecordChangeResponse>, Status> {
        let req = request.into_inner();
        let change = ChangeRecord {
            id: String::new(),
            what: optional_text("what", Some(req.what))?.unwrap_or_default(),
            by: req.by,
            services: req.services,
            hosts: req.hosts,
            at_ms: req.at_ms,
            risk: if req.risk.is_empty() {
                Risk::Medium
            } else {
                Risk::parse(&req.risk).map_err(Status::invalid_argument)?
            },
            backout: optional_text("backout", Some(req.backout))?.unwrap_or_default(),
            recorded_ms: 0,
        };
        let alerter = self.alerter.clone();
        let c = blocking(move || alerter.record_change(change, now_ms()).map_err(refused)).await?;
        tracing::info!(change = %c.id, "change recorded");
        Ok(Response::new(pb::RecordChangeResponse {
            change: Some(change_to_wire(c)),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        let req = request.into_inner();
        let (from, to) = window(req.from_ms, req.to_ms, 7 * 86_400_000)?;
        let alerter = self.alerter.clone();
        let changes = blocking(move || {
            alerter
                .change_records(from, to)
                .map_err(|e| Status::unavailable(e.to_string()))
        })
        .await?;
        Ok(Response::new(pb::ListChangesResponse {
            changes: changes
                .into_iter()
                .filter(|c| req.service.is_empty() || c.services.contains(&req.service))
                .filter(|c| req.host.is_empty() || c.hosts.contains(&req.host))
                .map(change_to_wire)
                .collect(),
        }))
    }

    async fn incident_report(
        &self,
        request: Request<pb::IncidentReportRequest>,
    ) -> Result<Response<pb::IncidentReportResponse>, Status> {
        let req = request.into_inner();
        let (from, to) = window(req.from_ms, req.to_ms, 30 * 86_400_000)?;
        let now = now_ms();
        let api = self.clone();
        let report = blocking(move || {
            let incidents = api.alerter.incidents_between(from, to);
            let follow_ups = api.alerter.follow_ups();
            let count = api.alerter.incident_config().recurring_count;
            Ok(incident_report::incident_report(
                &incidents,
                &follow_ups,
                count,
                from,
                to,
                now,
                &|i| api.weighted_minutes(i, now),
            ))
        })
        .await?;
        Ok(Response::new(report_to_wire(report, now)))
    }

    async fn noise_report(
        &self,
        request: Request<pb::NoiseReportRequest>,
    ) -> Result<Response<pb::NoiseReportResponse>, Status> {
        let req = request.into_inner();
        let (from, to) = window(req.from_ms, req.to_ms, 7 * 86_400_000)?;
        let limit = match req.limit {
            0 => 20,
            n => n.min(1000) as usize,
        };
        let alerter = self.alerter.clone();
        let rows = blocking(move || {
            let history = alerter
                .history(from, NOISE_HISTORY_LIMIT, None)
                .map_err(|e| Status::unavailable(e.to_string()))?;
            Ok(incident_report::noise(&history, from, to, limit))
        })
        .await?;
        let min = |ms: f64| ms / 60_000.0;
        Ok(Response::new(pb::NoiseReportResponse {
            rules: rows
                .into_iter()
                .map(|r| pb::RuleNoise {
                    rule: r.rule,
                    fired: r.fired as u32,
                    acknowledged: r.acknowledged as u32,
                    ack_ratio: r.ack_ratio,
                    median_minutes_firing: min(r.lifetime.median_ms),
                    shortest_minutes_firing: min(r.shortest_ms),
                    short_lived: r.short_lived as u32,
                    flapping: r.flapping as u32,
                    notifications: r.notifications as u32,
                    series: r.series as u32,
                    score: r.score,
                })
                .collect(),
        }))
    }
}
