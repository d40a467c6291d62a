//! Routing: which hooks hear about an alert, how long to group, how often
//! to repeat, and whom to escalate to. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::state::Level;
use nightjar_model::selector::Matcher;

/// One route: alerts whose labels match and whose severity is listed go
/// to `hooks`.
#[derive(Clone, Debug)]
pub struct Route {
    /// Matchers on alert labels (all must hold).
    pub matchers: Vec<Matcher>,
    /// Severities it takes (empty = all).
    pub severities: Vec<Level>,
    /// Hook names.
    pub hooks: Vec<String>,
    /// Notifications of one rule and event queued within this wait go out
    /// as one message.
    pub group_wait: Duration,
    /// Repeat an unacknowledged firing alert this often.
    pub repeat_interval: Duration,
    /// Hook notified when a critical alert stays unacknowledged.
    pub escalate_to: Option<String>,
    /// ... for this long.
    pub escalate_after: Duration,
    /// Remind the hooks when an open incident has had no note this long
    /// (zero: never).
    pub update_interval: Duration,
    /// Keep looking at later routes after a match.
    pub continue_: bool,
}

impl Route {
    fn matches(&self, labels: &BTreeMap<String, String>, severity: Option<Level>) -> bool {
        let severity_ok = self.severities.is_empty()
            || severity.is_none()
            || severity.is_some_and(|s| self.severities.contains(&s));
        severity_ok
            && self
                .matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
    }
}

/// The routes, with a catch-all to every hook when none is configured.
#[derive(Clone, Debug)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router; with no `routes`, one route sends everything to every hook.
    pub fn new(
        routes: Vec<Route>,
        all_hooks: Vec<String>,
        group_wait: Duration,
        repeat_interval: Duration,
        update_interval: Duration,
    ) -> Router {
        if !routes.is_empty() || all_hooks.is_empty() {
            return Router { routes };
        }
        Router {
            routes: vec![Route {
                matchers: Vec::new(),
                severities: Vec::new(),
                hooks: all_hooks,
                group_wait,
                repeat_interval,
                escalate_to: None,
                escalate_after: Duration::ZERO,
                update_interval,
                continue_: false,
            }],
        }
    }

    /// The routes an alert takes. A resolve (`severity` None) goes wherever
    /// any severity would have gone, so whoever heard of the trouble hears
    /// it is over.
    pub fn routes(
        &self,
        labels: &BTreeMap<String, String>,
        severity: Option<Level>,
    ) -> Vec<&Route> {
        let mut out = Vec::new();
        for route in &self.routes {
            if route.matches(labels, severity) {
                out.push(route);
                if !route.continue_ {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(m: &[&str], sev: &[Level], hooks: &[&str], cont: bool) -> Route {
        Route {
            matchers: m.iter().map(|t| Matcher::parse(t).unwrap()).collect(),
            severities: sev.to_vec(),
            hooks: hooks.iter().map(|h| h.to_string()).collect(),
            group_wait: Duration::ZERO,
            repeat_interval: Duration::from_secs(3600),
            escalate_to: None,
            escalate_after: Duration::ZERO,
            update_interval: Duration::ZERO,
            continue_: cont,
        }
    }

    fn hooks(r: &Router, labels: &[(&str, &str)], sev: Option<Level>) -> Vec<String> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r.routes(&labels, sev)
            .iter()
            .flat_map(|r| r.hooks.clone())
            .collect()
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let r = Router::new(
            vec![
                route(&["team=db"], &[Level::Critical], &["pd"], true),
                route(&["team=db"], &[], &["slack-db"], false),
                route(&[], &[], &["slack-all"], false),
            ],
            vec![],
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(
            hooks(&r, &[("team", "db")], Some(Level::Critical)),
            ["pd", "slack-db"]
        );
        assert_eq!(
            hooks(&r, &[("team", "db")], Some(Level::Warning)),
            ["slack-db"]
        );
        assert_eq!(
            hooks(&r, &[("team", "db")], None),
            ["pd", "slack-db"],
            "resolve reaches pd"
        );
        assert_eq!(
            hooks(&r, &[("team", "web")], Some(Level::Critical)),
            ["slack-all"]
        );
    }

    #[test]
    fn no_routes_means_every_hook() {
        let r = Router::new(
            vec![],
            vec!["a".into(), "b".into()],
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(hooks(&r, &[], Some(Level::Warning)), ["a", "b"]);
    }
}
