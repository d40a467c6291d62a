//! The services and their states for the board: the `BoardService` gRPC
//! API (list, watch) over the declared services (`ServiceCatalog`, loaded
//! from the service files and replaced on SIGHUP), evaluated from the
//! alerter's active alerts and the storage's series
//! (`nightjar_alerting::services`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nightjar_alerting::alerter::{Alerter, now_ms};
use nightjar_alerting::services::{Health, ServiceState, evaluate};
use nightjar_model::service::{self, Service, ServiceError};
use nightjar_proto::v1 as pb;
use nightjar_storage::Storage;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// How often a watcher re-evaluates when no alert changed (data arriving
/// or going away changes grey to green and back).
const WATCH_TICK: Duration = Duration::from_secs(1);

/// The declared services, and the one evaluation loop that every watcher
/// of them shares.
#[derive(Default)]
pub struct ServiceCatalog {
    paths: Vec<PathBuf>,
    services: RwLock<Arc<Vec<Service>>>,
    watched: Watched,
    presence: DataPresence,
}

/// The latest states, judged by one loop that runs while anyone watches:
/// an open board costs one evaluation a second (and one per alert
/// change) however many boards are open.
#[derive(Default)]
struct Watched {
    /// `Some(states)` once the running loop has judged; `None` before.
    states: std::sync::OnceLock<tokio::sync::watch::Sender<Option<Arc<Vec<pb::ServiceStatus>>>>>,
    /// Whether the loop runs. Held while subscribing and while the loop
    /// decides to end, so that a new watcher never finds it just ending.
    running: std::sync::Mutex<bool>,
}

impl ServiceCatalog {
    /// Loads the service files at `paths` (none: no services).
    pub fn load(paths: Vec<PathBuf>) -> Result<ServiceCatalog, ServiceError> {
        let services = service::load(&paths)?;
        Ok(ServiceCatalog {
            paths,
            services: RwLock::new(Arc::new(services)),
            watched: Watched::default(),
            presence: DataPresence::default(),
        })
    }

    /// Services given directly (tests).
    pub fn of(services: Vec<Service>) -> ServiceCatalog {
        ServiceCatalog {
            paths: Vec::new(),
            services: RwLock::new(Arc::new(services)),
            watched: Watched::default(),
            presence: DataPresence::default(),
        }
    }

    /// Reads the files again (SIGHUP); on error nothing changes. Returns
    /// how many services there are now.
    pub fn reload(&self, paths: Vec<PathBuf>) -> Result<usize, ServiceError> {
        let services = service::load(&paths)?;
        let n = services.len();
        *self.services.write().expect("services lock") = Arc::new(services);
        Ok(n)
    }

    /// The paths last loaded.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The services now.
    pub fn services(&self) -> Arc<Vec<Service>> {
        self.services.read().expect("services lock").clone()
    }

    /// Whether any series of `storage` matches `selector` (remembered, see
    /// [`DataPresence`]).
    pub fn has_data<S: Storage>(
        &self,
        selector: &nightjar_model::selector::Selector,
        storage: &S,
    ) -> bool {
        let total = storage.series_counts("").1;
        self.presence
            .has_data(selector, total, || !storage.series(selector).is_empty())
    }
}

/// The board's gRPC API.
pub struct BoardApi<S> {
    storage: Arc<S>,
    alerter: Arc<Alerter>,
    catalog: Arc<ServiceCatalog>,
}

impl<S> Clone for BoardApi<S> {
    fn clone(&self) -> Self {
        BoardApi {
            storage: self.storage.clone(),
            alerter: self.alerter.clone(),
            catalog: self.catalog.clone(),
        }
    }
}

impl<S: Storage> BoardApi<S> {
    /// The API over `catalog`, judged by `alerter` and `storage`.
    pub fn new(storage: Arc<S>, alerter: Arc<Alerter>, catalog: Arc<ServiceCatalog>) -> Self {
        BoardApi {
            storage,
            alerter,
            catalog,
        }
    }

    /// Every service's state now.
    fn states(&self) -> (Arc<Vec<Service>>, Vec<ServiceState>) {
        let services = self.catalog.services();
        let active: Vec<_> = self
            .alerter
            .active(now_ms())
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        let storage = &*self.storage;
        let catalog = &self.catalog;
        let states = evaluate(&services, &active, &|selector| {
            catalog.has_data(selector, storage)
        });
        (services, states)
    }
}

/// Whether a component's selector matches any series, remembered: asking
/// the storage means matching every series against the selector, and the
/// board judges every second. A "no" holds while the number of series is
/// unchanged (data for a grey component comes as new series, and turns it
/// green at the next judgement); a "yes" is asked again after `YES_FOR`,
/// as series leave only by retention.
#[derive(Default)]
struct DataPresence {
    known: std::sync::Mutex<std::collections::HashMap<String, Known>>,
}

#[derive(Clone, Copy)]
struct Known {
    yes: bool,
    at: std::time::Instant,
    series_total: u64,
}

impl DataPresence {
    const YES_FOR: Duration = Duration::from_secs(600);

    fn has_data(
        &self,
        selector: &nightjar_model::selector::Selector,
        series_total: u64,
        ask: impl FnOnce() -> bool,
    ) -> bool {
        let key = format!("{selector:?}");
        let now = std::time::Instant::now();
        if let Some(k) = self.known.lock().expect("presence lock").get(&key) {
            let fresh = if k.yes {
                now.duration_since(k.at) < Self::YES_FOR
            } else {
                k.series_total == series_total
            };
            if fresh {
                return k.yes;
            }
        }
        let yes = ask();
        let mut known = self.known.lock().expect("presence lock");
        // Selectors of services removed on reload go with the next clear.
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert(
            key,
            Known {
                yes,
                at: now,
                series_total,
            },
        );
        yes
    }
}

fn health_to_wire(h: Health) -> pb::Health {
    match h {
        Health::Ok => pb::Health::Ok,
        Health::Unknown => pb::Health::Unknown,
        Health::Warning => pb::Health::Warning,
        Health::Critical => pb::Health::Critical,
    }
}

fn status_to_wire(service: &Service, state: &ServiceState) -> pb::ServiceStatus {
    pb::ServiceStatus {
        name: service.name.clone(),
        description: service.description.clone(),
        team: service.team.clone(),
        weight: service.weight,
        health: health_to_wire(state.health) as i32,
        components: state
            .components
            .iter()
            .zip(&service.components)
            .map(|(c, declared)| pb::ComponentStatus {
                name: c.name.clone(),
                layer: c.layer.as_str().into(),
                health: health_to_wire(c.health) as i32,
                alert_ids: c.alerts.clone(),
                reason: c.reason.clone(),
                selector: declared.selector_text.clone(),
                series: Some(nightjar_model::convert::selector_to_wire(
                    &declared.selector,
                )),
            })
            .collect(),
        dependencies: state
            .dependencies
            .iter()
            .map(|(name, h)| pb::DependencyStatus {
                service: name.clone(),
                health: health_to_wire(*h) as i32,
            })
            .collect(),
        contacts: service
            .contacts
            .iter()
            .map(|c| pb::ServiceContact {
                team: c.team.clone(),
                hours: c.hours.clone(),
                phone: c.phone.clone(),
                email: c.email.clone(),
                chat: c.chat.clone(),
            })
            .collect(),
    }
}

fn to_wire(services: &[Service], states: &[ServiceState]) -> Vec<pb::ServiceStatus> {
    states
        .iter()
        .filter_map(|state| {
            let service = services.iter().find(|s| s.name == state.name)?;
            Some(status_to_wire(service, state))
        })
        .collect()
}

#[tonic::async_trait]
impl<S: Storage> pb::board_service_server::BoardService for BoardApi<S> {
    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let me = self.clone();
        let (services, states) = tokio::task::spawn_blocking(move || me.states())
            .await
            .map_err(|e| Status::internal(format!("evaluating services failed: {e}")))?;
        Ok(Response::new(pb::ListServicesResponse {
            services: to_wire(&services, &states),
        }))
    }

    type WatchServicesStream = ReceiverStream<Result<pb::ServiceEvent, Status>>;

    async fn watch_services(
        &self,
        _request: Request<pb::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        let mut states = self.subscribe();
        tokio::spawn(async move {
            let mut last: BTreeMap<String, pb::ServiceStatus> = BTreeMap::new();
            loop {
                let snapshot = states.borrow_and_update().clone();
                for status in snapshot.iter().flat_map(|s| s.iter()) {
                    let previous = last.get(&status.name);
                    if previous.is_some_and(|p| p == status) {
                        continue;
                    }
                    let event = pb::ServiceEvent {
                        at_ms: now_ms(),
                        previous: previous.map_or(pb::Health::Unspecified as i32, |p| p.health),
                        service: Some(status.clone()),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    last.insert(status.name.clone(), status.clone());
                }
                tokio::select! {
                    changed = states.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl<S: Storage> BoardApi<S> {
    /// The shared states, starting the loop that judges them if none runs.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Arc<Vec<pb::ServiceStatus>>>> {
        let watched = &self.catalog.watched;
        let sender = watched
            .states
            .get_or_init(|| tokio::sync::watch::channel(None).0);
        let mut running = watched.running.lock().expect("watch lock");
        let receiver = sender.subscribe();
        if !*running {
            *running = true;
            // States judged by an earlier loop are stale by now.
            sender.send_replace(None);
            tokio::spawn(self.clone().judge_while_watched());
        }
        receiver
    }

    /// Judges every service at once, again at each alert change and every
    /// WATCH_TICK (data coming and going), until no one watches.
    async fn judge_while_watched(self) {
        let watched = &self.catalog.watched;
        let sender = watched.states.get().expect("set before the loop starts");
        let mut alert_events = self.alerter.subscribe();
        let mut tick = tokio::time::interval(WATCH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the last judgement saw: without an alert change, a state
        // can only change when series come (grey to green) or the service
        // files are reloaded; a tick with neither judges nothing.
        let mut judged: Option<(Arc<Vec<Service>>, u64)> = None;
        let mut alert_changed = true;
        loop {
            {
                let mut running = watched.running.lock().expect("watch lock");
                if sender.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
            let seen = (self.catalog.services(), self.storage.series_counts("").1);
            let same = judged
                .as_ref()
                .is_some_and(|(s, n)| Arc::ptr_eq(s, &seen.0) && *n == seen.1);
            if !same || alert_changed {
                judged = Some(seen);
                alert_changed = false;
                let judge = self.clone();
                let Ok((services, states)) =
                    tokio::task::spawn_blocking(move || judge.states()).await
                else {
                    *watched.running.lock().expect("watch lock") = false;
                    return;
                };
                let wire = Arc::new(to_wire(&services, &states));
                sender.send_if_modified(|current| {
                    if current.as_ref().is_some_and(|c| *c == wire) {
                        return false;
                    }
                    *current = Some(wire);
                    true
                });
            }
            tokio::select! {
                event = alert_events.recv() => {
                    if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        *watched.running.lock().expect("watch lock") = false;
                        return;
                    }
                    // Further events of the same burst: one judgement.
                    while alert_events.try_recv().is_ok() {}
                    alert_changed = true;
                }
                _ = tick.tick() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nightjar_proto::v1 as pb;

    use crate::testing::{Options, TestCollector, now_ms, send, wire_batch};

    const RULES: &str =
        "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\ncritical = 90\n";
    const SERVICES: &str = "[[service]]\nname = \"shop\"\nteam = \"web\"\n[[service.contact]]\nteam = \"web on call\"\nphone = \"123\"\n[[service.component]]\nname = \"web host\"\nlayer = \"machine\"\nmatchers = [\"host=web-1\"]\n";

    async fn shop(c: &TestCollector) -> pb::ServiceStatus {
        let mut board = c.board();
        let answer = board
            .list_services(pb::ListServicesRequest {})
            .await
            .unwrap()
            .into_inner();
        answer.services.into_iter().next().expect("one service")
    }

    #[tokio::test]
    async fn a_service_is_grey_without_data_then_follows_its_alerts() {
        let c = TestCollector::with(Options {
            rules: Some(RULES),
            services: Some(SERVICES),
            ..Options::default()
        })
        .await;
        let before = shop(&c).await;
        assert_eq!(
            before.health,
            pb::Health::Unknown as i32,
            "grey, never green without data"
        );
        assert!(
            before.components[0].reason.contains("no data"),
            "{:?}",
            before.components[0]
        );
        assert_eq!(before.contacts[0].phone, "123");
        let mut watch = c
            .board()
            .watch_services(pb::WatchServicesRequest {})
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.previous, pb::Health::Unspecified as i32);
        let t = now_ms();
        send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("temp", t, 20.0)])],
        )
        .await;
        assert_eq!(shop(&c).await.health, pb::Health::Ok as i32);
        send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 2, &[("temp", t + 1, 70.0)])],
        )
        .await;
        let amber = shop(&c).await;
        assert_eq!(amber.health, pb::Health::Warning as i32);
        assert_eq!(amber.components[0].alert_ids.len(), 1);
        // The watcher is told of the change to amber (green may come
        // first, if a tick fell between the two batches).
        let amber_event = loop {
            let event = watch.message().await.unwrap().unwrap();
            if event.service.as_ref().unwrap().health == pb::Health::Warning as i32 {
                break event;
            }
        };
        assert!(
            [pb::Health::Ok as i32, pb::Health::Unknown as i32].contains(&amber_event.previous),
            "{amber_event:?}"
        );
        send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 3, &[("temp", t + 2, 95.0)])],
        )
        .await;
        assert_eq!(shop(&c).await.health, pb::Health::Critical as i32);
    }

    /// Watchers share one judging loop: a late watcher starts from the
    /// current states, and once every watcher is gone the loop ends and a
    /// new one starts from fresh states, not stale ones.
    #[tokio::test]
    async fn watchers_share_one_loop_that_ends_with_the_last_watcher() {
        let c = TestCollector::with(Options {
            rules: Some(RULES),
            services: Some(SERVICES),
            ..Options::default()
        })
        .await;
        let watch = || async {
            c.board()
                .watch_services(pb::WatchServicesRequest {})
                .await
                .unwrap()
                .into_inner()
        };
        let health = |e: &pb::ServiceEvent| e.service.as_ref().unwrap().health;
        let mut first = watch().await;
        assert_eq!(
            health(&first.message().await.unwrap().unwrap()),
            pb::Health::Unknown as i32
        );
        let t = now_ms();
        send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("temp", t, 95.0)])],
        )
        .await;
        let red = loop {
            let e = first.message().await.unwrap().unwrap();
            if health(&e) == pb::Health::Critical as i32 {
                break e;
            }
        };
        assert_eq!(
            red.service.as_ref().unwrap().components[0].alert_ids.len(),
            1
        );
        // A second watcher: its first event is today's state, at once.
        let mut second = watch().await;
        let e = second.message().await.unwrap().unwrap();
        assert_eq!(
            (health(&e), e.previous),
            (pb::Health::Critical as i32, pb::Health::Unspecified as i32)
        );
        drop(first);
        drop(second);
        let running = || *c.catalog.watched.running.lock().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while running() {
            assert!(
                std::time::Instant::now() < deadline,
                "the loop ends without watchers"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 2, &[("temp", t + 1, 20.0)])],
        )
        .await;
        let mut third = watch().await;
        let e = third.message().await.unwrap().unwrap();
        assert!(running());
        assert_eq!(
            health(&e),
            pb::Health::Ok as i32,
            "fresh states, not the loop's last"
        );
    }
}
