//! The state of each service, from the state of its alerts: a component is
//! red or amber by the worst firing alert whose labels it selects, green
//! when none fires and its series have data, and grey ("unknown") when
//! there is no data at all: never green for lack of news. A service is its
//! worst component or dependency. A host in `host_down` turns the machine
//! components that select it red, like any critical alert on it.
//! Pure: the caller passes the active alerts and a way to ask whether a
//! selector has series.

use std::collections::BTreeMap;

use nightjar_model::selector::Selector;
use nightjar_model::service::{Layer, Service};

use crate::engine::Alert;
use crate::state::Level;

/// How a component or service is, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Green: data, and nothing firing.
    Ok,
    /// Grey: no data to judge by.
    Unknown,
    /// Amber: a warning (or a flapping alert).
    Warning,
    /// Red: a critical alert.
    Critical,
}

impl Health {
    /// The word shown beside the colour (`ok`, `unknown`, `warning`,
    /// `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unknown => "unknown",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

/// One component's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentState {
    /// Its name.
    pub name: String,
    /// Its layer.
    pub layer: Layer,
    /// How it is.
    pub health: Health,
    /// The firing alerts behind it (ids), worst first.
    pub alerts: Vec<String>,
    /// Why, in a few words.
    pub reason: String,
}

/// One service's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceState {
    /// Its name.
    pub name: String,
    /// How it is: the worst of its components and dependencies.
    pub health: Health,
    /// Its components, in declaration order.
    pub components: Vec<ComponentState>,
    /// Its dependencies and how they are.
    pub dependencies: Vec<(String, Health)>,
}

/// The state of every service. `active` are the alerts now pending, firing
/// or flapping; `has_data` says whether any series matches a selector.
/// Services are assumed checked (`service::check_references`: no cycles).
pub fn evaluate(
    services: &[Service],
    active: &[Alert],
    has_data: &dyn Fn(&Selector) -> bool,
) -> Vec<ServiceState> {
    let mut done: BTreeMap<String, ServiceState> = BTreeMap::new();
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    for service in services {
        state_of(service, &by_name, active, has_data, &mut done);
    }
    services
        .iter()
        .filter_map(|s| done.get(&s.name).cloned())
        .collect()
}

fn state_of(
    service: &Service,
    by_name: &BTreeMap<&str, &Service>,
    active: &[Alert],
    has_data: &dyn Fn(&Selector) -> bool,
    done: &mut BTreeMap<String, ServiceState>,
) -> Health {
    if let Some(state) = done.get(&service.name) {
        return state.health;
    }
    let components: Vec<ComponentState> = service
        .components
        .iter()
        .map(|c| {
            let mut firing: Vec<(&Alert, Health)> = active
                .iter()
                .filter(|a| c.matches_alert(&a.labels, &a.series))
                .filter_map(|a| alert_health(a).map(|h| (a, h)))
                .collect();
            firing.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.id.cmp(&y.0.id)));
            let (health, reason) = match firing.first() {
                Some((worst, health)) => (
                    *health,
                    if worst.summary.is_empty() {
                        worst.rule.clone()
                    } else {
                        worst.summary.clone()
                    },
                ),
                None if has_data(&c.selector) => (Health::Ok, String::new()),
                None => (Health::Unknown, format!("no data for {}", c.selector_text)),
            };
            ComponentState {
                name: c.name.clone(),
                layer: c.layer,
                health,
                alerts: firing.iter().map(|(a, _)| a.id.clone()).collect(),
                reason,
            }
        })
        .collect();
    let dependencies: Vec<(String, Health)> = service
        .depends_on
        .iter()
        .filter_map(|d| by_name.get(d.as_str()))
        .map(|dep| {
            let health = state_of(dep, by_name, active, has_data, done);
            (dep.name.clone(), health)
        })
        .collect();
    let health = components
        .iter()
        .map(|c| c.health)
        .chain(dependencies.iter().map(|(_, h)| *h))
        .max()
        .unwrap_or(Health::Unknown);
    done.insert(
        service.name.clone(),
        ServiceState {
            name: service.name.clone(),
            health,
            components,
            dependencies,
        },
    );
    health
}

/// What a firing or flapping alert means for a component (pending ones
/// mean nothing yet).
fn alert_health(alert: &Alert) -> Option<Health> {
    match alert.state.level {
        Some(Level::Critical) => Some(Health::Critical),
        Some(Level::Warning) => Some(Health::Warning),
        None if alert.state.flapping => Some(Health::Warning),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Event};
    use crate::rules::parse_rules;
    use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
    use nightjar_model::service::{check_references, parse_services};

    const SERVICES: &str = r#"
[[service]]
name = "shop"
depends_on = ["db"]
[[service.component]]
name = "web hosts"
layer = "machine"
matchers = ["host=~web-.*"]
[[service.component]]
name = "orders"
layer = "business"
metric = "orders_per_minute"

[[service]]
name = "db"
[[service.component]]
name = "db host"
layer = "machine"
matchers = ["host=db-1"]
"#;

    fn services() -> Vec<Service> {
        let parsed = parse_services("s.toml", SERVICES).unwrap();
        let located: Vec<_> = parsed
            .iter()
            .map(|(s, l)| (s.clone(), "s.toml".to_owned(), *l))
            .collect();
        check_references(&located).unwrap();
        parsed.into_iter().map(|(s, _)| s).collect()
    }

    fn batch(host: &str, metric: &str, value: f64, t: i64) -> Batch {
        Batch {
            agent_id: format!("agent-{host}"),
            host: host.into(),
            seq: t as u64,
            interval_ms: 10_000,
            samples: vec![Sample {
                series: SeriesKey {
                    metric: metric.into(),
                    labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
                },
                point: Point::new(t, value),
            }],
            histograms: Vec::new(),
        }
    }

    fn engine() -> Engine {
        let rules = parse_rules(
            "r.toml",
            "[[rule]]\nname = \"cpu\"\nmetric = \"cpu\"\nwarning = 80\ncritical = 95\n",
        )
        .unwrap();
        Engine::new(rules, 3)
    }

    fn health(states: &[ServiceState], name: &str) -> Health {
        states.iter().find(|s| s.name == name).unwrap().health
    }

    #[test]
    fn states_follow_alerts_worst_component_and_dependencies() {
        let services = services();
        let mut engine = engine();
        let all_data = |_: &Selector| true;
        let mut events: Vec<Event> =
            engine.observe(&batch("web-1", "cpu", 10.0, 1_000), 1_000, true);
        events.extend(engine.observe(&batch("db-1", "cpu", 10.0, 1_000), 1_000, true));
        let active: Vec<Alert> = engine.active().cloned().collect();
        let states = evaluate(&services, &active, &all_data);
        assert_eq!(health(&states, "shop"), Health::Ok);

        engine.observe(&batch("web-1", "cpu", 85.0, 2_000), 2_000, true);
        let active: Vec<Alert> = engine.active().cloned().collect();
        let states = evaluate(&services, &active, &all_data);
        assert_eq!(health(&states, "shop"), Health::Warning, "amber");
        assert_eq!(health(&states, "db"), Health::Ok);
        let web = &states[0].components[0];
        assert_eq!((web.health, web.alerts.len()), (Health::Warning, 1));

        engine.observe(&batch("db-1", "cpu", 99.0, 3_000), 3_000, true);
        let active: Vec<Alert> = engine.active().cloned().collect();
        let states = evaluate(&services, &active, &all_data);
        assert_eq!(health(&states, "db"), Health::Critical);
        assert_eq!(
            health(&states, "shop"),
            Health::Critical,
            "a red dependency makes it red"
        );
        assert_eq!(
            states[0].dependencies,
            vec![("db".to_string(), Health::Critical)]
        );

        engine.observe(&batch("web-1", "cpu", 10.0, 4_000), 4_000, true);
        engine.observe(&batch("db-1", "cpu", 10.0, 4_000), 4_000, true);
        let active: Vec<Alert> = engine.active().cloned().collect();
        assert_eq!(
            health(&evaluate(&services, &active, &all_data), "shop"),
            Health::Ok
        );
        drop(events);
    }

    #[test]
    fn a_component_without_data_is_unknown_never_green() {
        let services = services();
        let no_orders = |s: &Selector| s.metric.as_deref() != Some("orders_per_minute");
        let states = evaluate(&services, &[], &no_orders);
        let orders = &states[0].components[1];
        assert_eq!(orders.health, Health::Unknown);
        assert!(
            orders.reason.contains("no data for orders_per_minute"),
            "{}",
            orders.reason
        );
        assert_eq!(health(&states, "shop"), Health::Unknown, "grey, not green");
        assert_eq!(health(&states, "db"), Health::Ok);
    }

    #[test]
    fn a_host_down_turns_its_machine_components_red() {
        let services = services();
        let mut engine = engine();
        engine.observe(&batch("web-1", "cpu", 10.0, 1_000), 1_000, true);
        // Three silent intervals of 10 s.
        engine.sweep(1_000 + 31_000);
        let active: Vec<Alert> = engine.active().cloned().collect();
        assert!(active.iter().any(|a| a.rule == "host_down"), "{active:?}");
        let states = evaluate(&services, &active, &|_: &Selector| true);
        assert_eq!(states[0].components[0].health, Health::Critical);
        assert_eq!(
            states[0].components[1].health,
            Health::Ok,
            "business has its own data"
        );
    }
}
