//! Availability against the SLA (docs/availability.md): the loop that
//! records every service's state timeline as it happens (`Recorder`, every
//! `STEP` and at each alert change), and the `AvailabilityService` gRPC API
//! that reports from the recorded timelines (never from raw points).

use std::sync::Arc;
use std::time::Duration;

use nightjar_alerting::alerter::{Alerter, now_ms};
use nightjar_alerting::availability::{Recorder, TimelineStore, report_from, report_of};
use nightjar_alerting::services::evaluate;
use nightjar_model::availability::timeline::Adjustment;
use nightjar_model::availability::{MINUTE_MS, combined};
use nightjar_proto::v1 as pb;
use nightjar_storage::Storage;
use tonic::{Request, Response, Status};

use crate::board::ServiceCatalog;

/// How often services are judged and the judging span extended when no
/// alert changes: the resolution of unknown (collector down) time.
pub const STEP: Duration = Duration::from_secs(2);

/// How often the burn rates are computed and stored as
/// `service_burn_rate_ratio` (what `kind = "burn_rate"` rules watch).
pub const BURN_EVERY: Duration = Duration::from_secs(5);

/// Each service's burn-rate conditions now: per condition, the slower of
/// its long and short windows' burn rates over the condition's rate, as
/// a batch of the collector's own series.
pub fn burn_batch(
    store: &dyn TimelineStore,
    services: &[nightjar_model::service::Service],
    maintenance: &[nightjar_alerting::silence::Maintenance],
    collector: &str,
    now: i64,
) -> Result<nightjar_model::model::Batch, nightjar_alerting::store::StoreError> {
    use nightjar_alerting::availability::burn_rate_of;
    use nightjar_model::model::{Labels, Point, Sample, SeriesKey};
    let mut samples = Vec::new();
    for s in services {
        let Some(a) = &s.availability else { continue };
        for w in nightjar_model::availability::timeline::burn_windows(a.slo_window_ms) {
            let long = burn_rate_of(store, s, maintenance, w.long_ms, now)?.unwrap_or(0.0);
            let short = burn_rate_of(store, s, maintenance, w.short_ms, now)?.unwrap_or(0.0);
            let labels = Labels::from_pairs(vec![
                ("host".to_owned(), collector.to_owned()),
                ("service".to_owned(), s.name.clone()),
                ("condition".to_owned(), w.name.to_owned()),
            ])
            .expect("distinct label names");
            samples.push(Sample {
                series: SeriesKey {
                    metric: nightjar_model::alert::rules::BURN_RATE_METRIC.to_owned(),
                    labels,
                },
                point: Point {
                    timestamp_ms: now,
                    value: long.min(short) / w.rate,
                },
            });
        }
    }
    Ok(nightjar_model::model::Batch {
        agent_id: format!("nightjar-collector/{collector}/availability"),
        host: collector.to_owned(),
        // Storage takes a batch once per (host, agent id, seq): the time
        // in ms rises from batch to batch, across restarts too.
        seq: now.max(1) as u64,
        interval_ms: BURN_EVERY.as_millis() as u64,
        samples,
        histograms: Vec::new(),
    })
}

/// Judges and records until the process ends, and stores and evaluates
/// the burn rates every `BURN_EVERY`. A failed write is logged once per
/// run of failures and tried again at the next step.
pub async fn record_periodically<S: Storage>(
    recorder: Arc<Recorder<dyn TimelineStore>>,
    storage: Arc<S>,
    alerter: Arc<Alerter>,
    catalog: Arc<ServiceCatalog>,
    collector: String,
) {
    let mut alert_events = alerter.subscribe();
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut last_burn = 0i64;
    loop {
        let (recorder, storage, alerter, catalog, collector) = (
            recorder.clone(),
            storage.clone(),
            alerter.clone(),
            catalog.clone(),
            collector.clone(),
        );
        let now = now_ms();
        let burn_now = now - last_burn >= BURN_EVERY.as_millis() as i64;
        if burn_now {
            last_burn = now;
        }
        let stepped = tokio::task::spawn_blocking(move || {
            let services = catalog.services();
            let active: Vec<_> = alerter.active(now).into_iter().map(|(a, _)| a).collect();
            let states = evaluate(&services, &active, &|selector| {
                catalog.has_data(selector, &*storage)
            });
            let changed = recorder.step(&services, &states, &active, now)?;
            if burn_now && services.iter().any(|s| s.availability.is_some()) {
                let batch = burn_batch(
                    recorder.store(),
                    &services,
                    &alerter.maintenance(),
                    &collector,
                    now,
                )?;
                match storage.append(&batch, now) {
                    // Burn-rate rules watch these series like any other.
                    Ok(_) => alerter.observe_own(&batch, now),
                    Err(error) => tracing::warn!(%error, "cannot store the burn rates"),
                }
            }
            Ok::<usize, nightjar_alerting::store::StoreError>(changed)
        })
        .await;
        match stepped {
            Ok(Ok(_)) if failing => {
                failing = false;
                tracing::info!("availability timeline writes work again");
            }
            Ok(Err(error)) if !failing => {
                failing = true;
                tracing::error!(%error, "cannot record the availability timeline; retrying every {} s", STEP.as_secs());
            }
            _ => {}
        }
        tokio::select! {
            event = alert_events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            _ = tick.tick() => {}
        }
    }
}

/// The availability API.
pub struct AvailabilityApi {
    store: Arc<dyn TimelineStore>,
    alerter: Arc<Alerter>,
    catalog: Arc<ServiceCatalog>,
}

impl AvailabilityApi {
    /// Reports from `store`'s timelines of `catalog`'s services.
    pub fn new(
        store: Arc<dyn TimelineStore>,
        alerter: Arc<Alerter>,
        catalog: Arc<ServiceCatalog>,
    ) -> Self {
        AvailabilityApi {
            store,
            alerter,
            catalog,
        }
    }
}

fn minutes(ms: f64) -> f64 {
    ms / MINUTE_MS as f64
}

/// When each outage of `changes` (by its start) was first acknowledged:
/// the first ack, while it lasted, of an alert recorded behind it.
/// `changes` are sorted by time (as the store returns them); `acks` need
/// not be.
fn acknowledged(
    outages: &[nightjar_model::availability::Outage],
    changes: &[nightjar_alerting::availability::Change],
    acks: &[(String, i64)],
    to: i64,
) -> std::collections::HashMap<i64, i64> {
    let mut acks: Vec<&(String, i64)> = acks.iter().collect();
    acks.sort_by_key(|(_, at)| *at);
    let mut out = std::collections::HashMap::new();
    for o in outages {
        // The changes in force during the outage: the last one at or before
        // its start, and those after it until its end.
        let first = changes
            .partition_point(|c| c.at_ms <= o.start_ms)
            .saturating_sub(1);
        let mut ids: Vec<&str> = Vec::new();
        for (i, c) in changes.iter().enumerate().skip(first) {
            if c.at_ms >= o.end_ms {
                break;
            }
            let until = changes.get(i + 1).map_or(to, |n| n.at_ms);
            if until > o.start_ms {
                ids.extend(c.alerts.iter().map(String::as_str));
            }
        }
        if ids.is_empty() {
            continue;
        }
        let from = acks.partition_point(|(_, at)| *at < o.start_ms);
        if let Some((_, at)) = acks[from..]
            .iter()
            .take_while(|(_, at)| *at <= o.end_ms)
            .find(|(id, _)| ids.contains(&id.as_str()))
        {
            out.insert(o.start_ms, *at);
        }
    }
    out
}

fn report_blocking(
    store: &dyn TimelineStore,
    catalog: &ServiceCatalog,
    maintenance: &[nightjar_alerting::silence::Maintenance],
    acks: &[(String, i64)],
    req: &pb::AvailabilityReportRequest,
) -> Result<pb::AvailabilityReportResponse, Status> {
    let (from, to) = (req.from_ms, req.to_ms);
    if to <= from {
        return Err(Status::invalid_argument(format!(
            "window: ends ({to}) before it starts ({from})"
        )));
    }
    if to - from > 400 * 86_400_000 {
        return Err(Status::invalid_argument("window: longer than 400 days"));
    }
    let services = catalog.services();
    let chosen: Vec<_> = if req.service.is_empty() {
        services
            .iter()
            .filter(|s| s.availability.is_some())
            .collect()
    } else {
        let s = services
            .iter()
            .find(|s| s.name == req.service)
            .ok_or_else(|| {
                let names: Vec<&str> = services
                    .iter()
                    .filter(|s| s.availability.is_some())
                    .map(|s| s.name.as_str())
                    .collect();
                Status::not_found(format!(
                    "service: no service is named {:?}; services with a target: {}",
                    req.service,
                    names.join(", ")
                ))
            })?;
        if s.availability.is_none() {
            return Err(Status::failed_precondition(format!(
                "service {:?} has no availability_target (docs/availability.md)",
                s.name
            )));
        }
        vec![s]
    };
    let mut out = Vec::new();
    let mut outage_intervals = Vec::new();
    let mut scheduled_union = Vec::new();
    for s in chosen {
        let a = s.availability.as_ref().expect("chosen have one");
        // Read once: the figures and the time to acknowledge both need them.
        let changes = store
            .timeline(&s.name, from, to)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let r = report_from(store, s, maintenance, from, to, &changes)
            .map_err(|e| Status::unavailable(e.to_string()))?
            .expect("a target");
        outage_intervals.push(
            r.outages
                .iter()
                .map(|o| (o.start_ms, o.end_ms))
                .collect::<Vec<_>>(),
        );
        scheduled_union.extend(a.schedule.intervals(from, to));
        let acked = acknowledged(&r.outages, &changes, acks, to);
        let to_ack: Vec<f64> = r
            .outages
            .iter()
            .filter_map(|o| acked.get(&o.start_ms).map(|at| (at - o.start_ms) as f64))
            .collect();
        let mean_to_ack = if to_ack.is_empty() {
            0.0
        } else {
            to_ack.iter().sum::<f64>() / to_ack.len() as f64
        };
        let restore = if r.outages.is_empty() {
            0.0
        } else {
            r.outages
                .iter()
                .map(|o| (o.end_ms - o.start_ms) as f64)
                .sum::<f64>()
                / r.outages.len() as f64
        };
        let days = if req.daily {
            daily(store, s, maintenance, from, to, r.budget_ms)?
        } else {
            Vec::new()
        };
        out.push(pb::ServiceAvailability {
            days,
            service: s.name.clone(),
            schedule: a.schedule.name().to_owned(),
            target_percent: r.target_percent,
            availability_percent: r.availability_percent,
            raw_availability_percent: r.raw_availability_percent,
            met: r.met,
            scheduled_minutes: minutes(r.scheduled_ms as f64),
            excluded_minutes: minutes(r.excluded_ms as f64),
            unknown_minutes: minutes(r.unknown_ms as f64),
            known_minutes: minutes(r.known_ms as f64),
            raw_outage_minutes: minutes(r.raw_outage_ms as f64),
            weighted_outage_minutes: minutes(r.weighted_outage_ms),
            budget_minutes: minutes(r.budget_ms),
            budget_used_minutes: minutes(r.budget_used_ms),
            budget_left_minutes: minutes(r.budget_left_ms),
            incidents: r.outages.len() as u32,
            mean_minutes_to_restore: minutes(restore),
            mean_minutes_to_acknowledge: minutes(mean_to_ack),
            acknowledged: to_ack.len() as u32,
            weight: s.weight,
            outages: r
                .top_talkers(match req.max_outages {
                    0 => 10,
                    n => n.min(1000) as usize,
                })
                .into_iter()
                .map(|o| pb::OutageReport {
                    start_ms: o.start_ms,
                    end_ms: o.end_ms,
                    raw_minutes: minutes(o.raw_ms as f64),
                    weighted_minutes: minutes(o.weighted_ms),
                    worst: o.worst,
                    adjusted_by: o
                        .adjustment
                        .as_ref()
                        .map(|a| a.by.clone())
                        .unwrap_or_default(),
                    adjusted_why: o
                        .adjustment
                        .as_ref()
                        .map(|a| a.why.clone())
                        .unwrap_or_default(),
                    adjusted_share: o.adjustment.as_ref().map_or(0.0, |a| a.share),
                    adjusted_impact: o.adjustment.as_ref().map_or(0.0, |a| a.impact),
                    acknowledged_ms: acked.get(&o.start_ms).copied().unwrap_or(0),
                })
                .collect(),
        });
    }
    let percents: Vec<f64> = out.iter().map(|s| s.availability_percent).collect();
    let weighted: Vec<(f64, f64)> = out
        .iter()
        .map(|s| (s.availability_percent, s.weight))
        .collect();
    let scheduled = nightjar_model::availability::normalise(scheduled_union);
    Ok(pb::AvailabilityReportResponse {
        mean_percent: combined::mean(&percents).unwrap_or(100.0),
        weighted_mean_percent: combined::weighted_mean(&weighted).unwrap_or(100.0),
        all_of_percent: combined::all_of(&scheduled, &outage_intervals),
        services: out,
    })
}

/// Each UTC day of `[from, to)` for `service`, with the window's budget
/// left at each day's end.
fn daily(
    store: &dyn TimelineStore,
    service: &nightjar_model::service::Service,
    maintenance: &[nightjar_alerting::silence::Maintenance],
    from: i64,
    to: i64,
    budget_ms: f64,
) -> Result<Vec<pb::DailyAvailability>, Status> {
    const DAY: i64 = 86_400_000;
    let mut out = Vec::new();
    let mut spent = 0.0;
    let mut day = from.div_euclid(DAY) * DAY;
    while day < to {
        let (a, b) = (day.max(from), (day + DAY).min(to));
        let r = report_of(store, service, maintenance, a, b)
            .map_err(|e| Status::unavailable(e.to_string()))?
            .expect("a target");
        spent += r.weighted_outage_ms;
        out.push(pb::DailyAvailability {
            day_start_ms: day,
            availability_percent: r.availability_percent,
            weighted_outage_minutes: minutes(r.weighted_outage_ms),
            unknown_minutes: minutes(r.unknown_ms as f64),
            scheduled_minutes: minutes(r.scheduled_ms as f64),
            budget_left_minutes: minutes(budget_ms - spent),
        });
        day += DAY;
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::availability_service_server::AvailabilityService for AvailabilityApi {
    async fn report(
        &self,
        request: Request<pb::AvailabilityReportRequest>,
    ) -> Result<Response<pb::AvailabilityReportResponse>, Status> {
        let req = request.into_inner();
        let (store, catalog, alerter) = (
            self.store.clone(),
            self.catalog.clone(),
            self.alerter.clone(),
        );
        let maintenance = self.alerter.maintenance();
        tokio::task::spawn_blocking(move || {
            // The acks of the window, for the time to acknowledge.
            let acks: Vec<(String, i64)> = alerter
                .history(req.from_ms, nightjar_model::api_args::HISTORY_LIMIT, None)
                .map_err(|e| Status::unavailable(e.to_string()))?
                .into_iter()
                .filter(|h| h.kind == "acknowledged")
                .map(|h| (h.alert_id, h.at_ms))
                .collect();
            report_blocking(&*store, &catalog, &maintenance, &acks, &req)
        })
        .await
        .map_err(|e| Status::internal(format!("report failed: {e}")))?
        .map(Response::new)
    }

    async fn adjust_outage(
        &self,
        request: Request<pb::AdjustOutageRequest>,
    ) -> Result<Response<pb::AdjustOutageResponse>, Status> {
        let req = request.into_inner();
        let services = self.catalog.services();
        if !services
            .iter()
            .any(|s| s.name == req.service && s.availability.is_some())
        {
            return Err(Status::not_found(format!(
                "service: no service with an availability target is named {:?}",
                req.service
            )));
        }
        for (field, v) in [("share", req.share), ("impact", req.impact)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Status::invalid_argument(format!(
                    "{field}: {v} must be between 0 and 1"
                )));
            }
        }
        if req.by.trim().is_empty() || req.why.trim().is_empty() {
            return Err(Status::invalid_argument(
                "by and why: an adjustment says who made it and why",
            ));
        }
        let adjustment = Adjustment {
            outage_start_ms: req.outage_start_ms,
            share: req.share,
            impact: req.impact,
            by: req.by,
            why: req.why,
            at_ms: now_ms(),
        };
        let store = self.store.clone();
        let service = req.service.clone();
        tokio::task::spawn_blocking(move || store.adjust(&service, &adjustment))
            .await
            .map_err(|e| Status::internal(format!("adjusting failed: {e}")))?
            .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::info!(service = %req.service, outage_start_ms = req.outage_start_ms, "outage adjusted");
        Ok(Response::new(pb::AdjustOutageResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use nightjar_alerting::availability::Change;
    use nightjar_model::availability::{Judged, Outage};

    fn outage(start_ms: i64, end_ms: i64) -> Outage {
        Outage {
            start_ms,
            end_ms,
            raw_ms: end_ms - start_ms,
            weighted_ms: 0.0,
            worst: 1.0,
            adjustment: None,
        }
    }

    fn change(at_ms: i64, lost: f64, alerts: &[&str]) -> Change {
        Change {
            at_ms,
            judged: Judged {
                lost,
                unknown: false,
            },
            alerts: alerts.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn an_outage_is_acknowledged_by_the_first_ack_of_an_alert_behind_it_while_it_lasts() {
        let outages = [outage(100, 200), outage(300, 400)];
        let changes = [
            change(100, 1.0, &["a"]),
            change(150, 1.0, &["a", "c"]),
            change(200, 0.0, &[]),
            change(300, 0.5, &["b"]),
            change(400, 0.0, &[]),
        ];
        let acks = [
            ("x".to_owned(), 110),
            ("c".to_owned(), 170),
            ("a".to_owned(), 160),
            ("b".to_owned(), 450),
            ("b".to_owned(), 290),
        ];
        let acked = super::acknowledged(&outages, &changes, &acks, 500);
        assert_eq!(
            acked.get(&100),
            Some(&160),
            "x is not behind it; a at 160 is the first"
        );
        assert_eq!(acked.get(&300), None, "b was acked only before and after");
    }
}
