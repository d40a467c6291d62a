//! Availability of services over time (docs/availability.md): the
//! recorder that judges each service with a target every few seconds and
//! durably records every change of what it loses (its state timeline), the
//! spans in which the collector was judging at all, operators'
//! adjustments, and the report assembled from them. The arithmetic is
//! `nightjar_model::availability`'s; this module feeds it.

use std::collections::HashMap;
use std::sync::Mutex;

use nightjar_model::availability::timeline::{Adjustment, ComponentNow, Judged};
use nightjar_model::availability::{self as avail, Report, ReportInput};
use nightjar_model::service::Service;

use crate::engine::Alert;
use crate::services::{Health, ServiceState};
use crate::silence::Maintenance;
use crate::store::StoreError;

/// One recorded change of a service: from `at_ms` on it lost `judged`,
/// because of `alerts` (the ids of the alerts behind its failing
/// components; what time to acknowledge is measured by).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub at_ms: i64,
    #[serde(flatten)]
    pub judged: Judged,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

/// Durable storage of timelines (the collector's RocksDB alert store, or
/// memory in tests). Every write is synced before it returns.
pub trait TimelineStore: Send + Sync + 'static {
    /// Appends changes, each of one service.
    fn record(&self, changes: &[(String, Change)]) -> Result<(), StoreError>;
    /// The collector judged from `span_start_ms` through `through_ms`
    /// (one span per run of the collector, extended by each heartbeat).
    fn judged_through(&self, span_start_ms: i64, through_ms: i64) -> Result<(), StoreError>;
    /// `service`'s changes in `[from_ms, to_ms)`, and the last one before
    /// `from_ms` (the state the window starts in), oldest first.
    fn timeline(&self, service: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Change>, StoreError>;
    /// The judging spans that overlap `[from_ms, to_ms)`.
    fn judging(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Stores an operator's adjustment of one outage of `service`.
    fn adjust(&self, service: &str, adjustment: &Adjustment) -> Result<(), StoreError>;
    /// `service`'s adjustments, oldest first.
    fn adjustments(&self, service: &str) -> Result<Vec<Adjustment>, StoreError>;
}

/// A [`TimelineStore`] in memory, for tests.
#[derive(Default)]
pub struct MemoryTimelineStore {
    changes: Mutex<Vec<(String, Change)>>,
    spans: Mutex<std::collections::BTreeMap<i64, i64>>,
    adjustments: Mutex<Vec<(String, Adjustment)>>,
}

impl TimelineStore for MemoryTimelineStore {
    fn record(&self, changes: &[(String, Change)]) -> Result<(), StoreError> {
        self.changes
            .lock()
            .expect("lock")
            .extend_from_slice(changes);
        Ok(())
    }

    fn judged_through(&self, span_start_ms: i64, through_ms: i64) -> Result<(), StoreError> {
        self.spans
            .lock()
            .expect("lock")
            .insert(span_start_ms, through_ms);
        Ok(())
    }

    fn timeline(&self, service: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Change>, StoreError> {
        let all = self.changes.lock().expect("lock");
        let mine: Vec<Change> = all
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, c)| c.clone())
            .collect();
        Ok(window_of(&mine, from_ms, to_ms))
    }

    fn judging(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|(a, b)| **a < to_ms && **b > from_ms)
            .map(|(a, b)| (*a, *b))
            .collect())
    }

    fn adjust(&self, service: &str, adjustment: &Adjustment) -> Result<(), StoreError> {
        self.adjustments
            .lock()
            .expect("lock")
            .push((service.to_owned(), adjustment.clone()));
        Ok(())
    }

    fn adjustments(&self, service: &str) -> Result<Vec<Adjustment>, StoreError> {
        Ok(self
            .adjustments
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, a)| a.clone())
            .collect())
    }
}

/// The changes in `[from, to)` of a sorted timeline, with the last one
/// before `from`.
pub fn window_of(sorted: &[Change], from_ms: i64, to_ms: i64) -> Vec<Change> {
    let first_inside = sorted.partition_point(|c| c.at_ms < from_ms);
    let start = first_inside.saturating_sub(1);
    sorted[start..]
        .iter()
        .take_while(|c| c.at_ms < to_ms)
        .cloned()
        .collect()
}

/// What `service` loses now, from its judged state and the active alerts:
/// each component's declared impact for its health, the user segments its
/// alerts name (by the service's users label).
pub fn judge_now(service: &Service, state: &ServiceState, active: &[Alert]) -> Judged {
    let users = service.availability.as_ref().and_then(|a| a.users.as_ref());
    let by_id: HashMap<&str, &Alert> = active.iter().map(|a| (a.id.as_str(), a)).collect();
    let components: Vec<ComponentNow> = service
        .components
        .iter()
        .zip(&state.components)
        .map(|(declared, now)| ComponentNow {
            impact: match now.health {
                Health::Critical => declared.impact,
                Health::Warning => declared.warning_impact,
                Health::Ok | Health::Unknown => 0.0,
            },
            unknown: now.health == Health::Unknown,
            segments: users
                .map(|u| {
                    now.alerts
                        .iter()
                        .filter_map(|id| by_id.get(id.as_str())?.labels.get(&u.label).cloned())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    avail::judge(users, &components)
}

/// The alerts behind the components that take something away now (the
/// ones whose acknowledgement starts the response to an outage).
pub fn alerts_behind(service: &Service, state: &ServiceState) -> Vec<String> {
    let mut ids: Vec<String> = service
        .components
        .iter()
        .zip(&state.components)
        .filter(|(declared, now)| match now.health {
            Health::Critical => declared.impact > 0.0,
            Health::Warning => declared.warning_impact > 0.0,
            Health::Ok | Health::Unknown => false,
        })
        .flat_map(|(_, now)| now.alerts.iter().cloned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Records each service's changes and the collector's judging span.
pub struct Recorder<T: ?Sized> {
    store: std::sync::Arc<T>,
    /// When this run of the collector began judging.
    span_start_ms: i64,
    /// What was last recorded per service.
    last: Mutex<HashMap<String, (Judged, Vec<String>)>>,
}

impl<T: TimelineStore + ?Sized> Recorder<T> {
    /// A recorder whose judging span starts at `now_ms`.
    pub fn new(store: std::sync::Arc<T>, now_ms: i64) -> Self {
        Recorder {
            store,
            span_start_ms: now_ms,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &T {
        &self.store
    }

    /// Judges every service with an availability target and records the
    /// ones whose loss changed, then extends the judging span to `now_ms`.
    /// On a failed write nothing is remembered as recorded: the next step
    /// writes it again (the change keeps its first time).
    pub fn step(
        &self,
        services: &[Service],
        states: &[ServiceState],
        active: &[Alert],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let mut last = self.last.lock().expect("recorder lock");
        let mut changes = Vec::new();
        for (service, state) in services.iter().zip(states) {
            if service.availability.is_none() || service.name != state.name {
                continue;
            }
            let judged = judge_now(service, state, active);
            let alerts = alerts_behind(service, state);
            let changed = last.get(&service.name).is_none_or(|(prev, prev_alerts)| {
                (prev.lost - judged.lost).abs() > 1e-9
                    || prev.unknown != judged.unknown
                    || *prev_alerts != alerts
            });
            if changed {
                changes.push((
                    service.name.clone(),
                    Change {
                        at_ms: now_ms,
                        judged,
                        alerts,
                    },
                ));
            }
        }
        if !changes.is_empty() {
            self.store.record(&changes)?;
            for (name, c) in &changes {
                last.insert(name.clone(), (c.judged, c.alerts.clone()));
            }
        }
        self.store.judged_through(self.span_start_ms, now_ms)?;
        Ok(changes.len())
    }
}

/// The maintenance windows that hold for `service`: those whose matchers
/// hold on `service=<name>`, as intervals in `[from, to)`.
pub fn maintenance_of(
    service: &str,
    windows: &[Maintenance],
    from_ms: i64,
    to_ms: i64,
) -> Vec<(i64, i64)> {
    let labels = std::collections::BTreeMap::from([("service".to_owned(), service.to_owned())]);
    let mut out = Vec::new();
    for w in windows.iter().filter(|w| {
        !w.matchers.is_empty()
            && w.matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
    }) {
        out.extend(w.intervals(from_ms, to_ms));
    }
    avail::normalise(out)
}

/// The report of `service` over `[from_ms, to_ms)` from the store.
pub fn report_of<T: TimelineStore + ?Sized>(
    store: &T,
    service: &Service,
    maintenance: &[Maintenance],
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<Report>, StoreError> {
    if service.availability.is_none() {
        return Ok(None);
    }
    let changes = store.timeline(&service.name, from_ms, to_ms)?;
    report_from(store, service, maintenance, from_ms, to_ms, &changes)
}

/// [`report_of`] with the window's changes already read (a caller that
/// needs them too reads them once).
pub fn report_from<T: TimelineStore + ?Sized>(
    store: &T,
    service: &Service,
    maintenance: &[Maintenance],
    from_ms: i64,
    to_ms: i64,
    changes: &[Change],
) -> Result<Option<Report>, StoreError> {
    let Some(a) = &service.availability else {
        return Ok(None);
    };
    let timeline: Vec<(i64, Judged)> = changes.iter().map(|c| (c.at_ms, c.judged)).collect();
    // Time outside the judging spans (the collector was not running) is unknown.
    let judging: Vec<(i64, i64)> = store.judging(from_ms, to_ms)?;
    let adjustments = store.adjustments(&service.name)?;
    let excluded = maintenance_of(&service.name, maintenance, from_ms, to_ms);
    Ok(Some(avail::report(&ReportInput {
        from_ms,
        to_ms,
        schedule: &a.schedule,
        excluded: &excluded,
        judging: &judging,
        timeline: &timeline,
        target_percent: a.target_percent,
        adjustments: &adjustments,
    })))
}

/// The burn rate of `service` over the `window_ms` before `now_ms`: the
/// budget spent against the window's scheduled time. Unknown time counts
/// as spending nothing (not as the whole window), so a collector that has
/// judged for a minute does not page for a 6-hour window on that minute.
pub fn burn_rate_of<T: TimelineStore + ?Sized>(
    store: &T,
    service: &Service,
    maintenance: &[Maintenance],
    window_ms: i64,
    now_ms: i64,
) -> Result<Option<f64>, StoreError> {
    Ok(
        report_of(store, service, maintenance, now_ms - window_ms, now_ms)?.map(|r| {
            avail::timeline::burn_rate(r.weighted_outage_ms, r.scheduled_ms, r.target_percent)
        }),
    )
}
