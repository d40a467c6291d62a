//! Notifications and the payloads each hook kind sends: the generic webhook
//! (our documented schema), PagerDuty Events API v2, and Slack-compatible
//! incoming webhooks. Pure: builders from notifications to JSON.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::Level;

/// Why a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// The alert fired.
    Firing,
    /// Warning → critical.
    Escalated,
    /// Critical → warning.
    Deescalated,
    /// The alert resolved.
    Resolved,
    /// The alert changes state too often; quiet until stable.
    Flapping,
    /// Stable again after flapping.
    Stable,
    /// Still firing and unacknowledged after the repeat interval.
    Repeat,
    /// Someone acknowledged it.
    Acknowledged,
    /// A critical alert stayed unacknowledged past the escalation delay
    /// (sent to the route's escalation hook).
    Escalation,
    /// An open incident has had no note for its routes' update interval:
    /// time to tell the stakeholders how it goes.
    #[serde(rename = "update_due")]
    UpdateDue,
    /// An incident ended: service restored.
    Restored,
}

impl NotifyEvent {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Firing => "firing",
            NotifyEvent::Escalated => "escalated",
            NotifyEvent::Deescalated => "deescalated",
            NotifyEvent::Resolved => "resolved",
            NotifyEvent::Flapping => "flapping",
            NotifyEvent::Stable => "stable",
            NotifyEvent::Repeat => "repeat",
            NotifyEvent::Acknowledged => "acknowledged",
            NotifyEvent::Escalation => "escalation",
            NotifyEvent::UpdateDue => "update_due",
            NotifyEvent::Restored => "restored",
        }
    }

    /// Whether the alert is still a problem after this event.
    pub fn is_problem(self, severity: Option<Level>) -> bool {
        severity.is_some() && !matches!(self, NotifyEvent::Resolved | NotifyEvent::Restored)
    }

    /// Whether it is about a whole incident rather than one alert.
    pub fn is_incident_notice(self) -> bool {
        matches!(self, NotifyEvent::UpdateDue | NotifyEvent::Restored)
    }
}

/// One notification about one alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification, the same on every retry and every hook.
    pub id: String,
    /// The same for every notification of one incident (trigger, repeats,
    /// ack, resolve): PagerDuty's `dedup_key`.
    pub dedup_key: String,
    /// Why it is sent.
    pub event: NotifyEvent,
    /// The alert's id (`nightjar ack ID`).
    pub alert_id: String,
    /// The rule.
    pub rule: String,
    /// Severity after the event (None = resolved).
    pub severity: Option<Level>,
    /// Alert labels (series labels, rule labels, `alertname`).
    pub labels: BTreeMap<String, String>,
    /// The value that caused it, if any.
    pub value: Option<f64>,
    /// Rendered summary.
    pub summary: String,
    /// Runbook URL.
    pub runbook: String,
    /// When the incident began firing (ms).
    pub started_ms: i64,
    /// When the event happened (ms).
    pub at_ms: i64,
    /// Who acknowledged it, if anyone.
    pub acked_by: Option<String>,
    /// The acknowledgement's note.
    pub ack_note: Option<String>,
    /// The incident it belongs to (number), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    /// Whether it travels with the other notifications of its incident
    /// (an incident of services: one outage, one message) rather than
    /// with those of its rule (an incident of one host: the same rule on
    /// several hosts is one message).
    #[serde(default)]
    pub grouped_by_incident: bool,
}

impl Notification {
    /// What its deliveries are ordered by, one at a time per hook: its
    /// alert, or for an incident-wide notice its incident.
    pub fn order_key(&self) -> String {
        match (self.alert_id.is_empty(), self.incident) {
            (true, Some(n)) => format!("I{n}"),
            _ => self.alert_id.clone(),
        }
    }

    /// The `host` label, or "".
    pub fn host(&self) -> &str {
        self.labels.get("host").map_or("", String::as_str)
    }

    fn status(&self) -> &'static str {
        if self.event.is_problem(self.severity) {
            "firing"
        } else {
            "resolved"
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

/// The generic webhook body (schema version 1, documented in
/// docs/alerting.md): one message, one or more alerts of one group.
pub fn webhook_body(group: &[&Notification], sent_ms: i64) -> Value {
    let first = group[0];
    let alerts: Vec<Value> = group
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "dedup_key": n.dedup_key,
                "alert_id": n.alert_id,
                "rule": n.rule,
                "event": n.event.as_str(),
                "status": n.status(),
                "severity": n.severity.map(Level::as_str),
                "labels": n.labels,
                "value": n.value,
                "summary": n.summary,
                "runbook": n.runbook,
                "started_at": rfc3339(n.started_ms),
                "at": rfc3339(n.at_ms),
                "acked_by": n.acked_by,
                "ack_note": n.ack_note,
                "incident": n.incident.map(|i| format!("I{i}")),
            })
        })
        .collect();
    json!({
        "version": "1",
        "rule": first.rule,
        "event": first.event.as_str(),
        "status": first.status(),
        // The message's incident, when all of it is one incident's.
        "incident": first
            .incident
            .filter(|i| group.iter().all(|n| n.incident == Some(*i)))
            .map(|i| format!("I{i}")),
        "sent_at": rfc3339(sent_ms),
        "alerts": alerts,
    })
}

/// The PagerDuty Events API v2 event for one notification
/// (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>).
pub fn pagerduty_event(n: &Notification, routing_key: &str) -> Value {
    let action = match n.event {
        NotifyEvent::Resolved => "resolve",
        NotifyEvent::Acknowledged => "acknowledge",
        NotifyEvent::Stable if n.severity.is_none() => "resolve",
        _ => "trigger",
    };
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.dedup_key,
    });
    if action == "trigger" {
        let severity = match n.severity {
            Some(Level::Critical) => "critical",
            Some(Level::Warning) => "warning",
            None => "info",
        };
        let source = if n.host().is_empty() {
            "nightjar"
        } else {
            n.host()
        };
        let mut summary = n.summary.clone();
        // PagerDuty truncates at 1024 characters; keep it on a char boundary.
        if summary.len() > 1024 {
            let mut cut = 1024;
            while !summary.is_char_boundary(cut) {
                cut -= 1;
            }
            summary.truncate(cut);
        }
        event["payload"] = json!({
            "summary": summary,
            "source": source,
            "severity": severity,
            "timestamp": rfc3339(n.at_ms),
            "class": n.rule,
            "group": n.labels.get("service").or(n.labels.get("team")),
            "custom_details": {
                "event": n.event.as_str(),
                "value": n.value,
                "labels": n.labels,
                "alert_id": n.alert_id,
            },
        });
        if !n.runbook.is_empty() {
            event["links"] = json!([{ "href": n.runbook, "text": "Runbook" }]);
        }
    }
    event
}

/// Escapes text for Slack's mrkdwn (<https://api.slack.com/reference/surfaces/formatting#escaping>):
/// `&`, `<`, `>`. Labels, summaries and statsd tags come from the watched
/// systems; unescaped, `<!channel>` would ping everyone and `<url|text>`
/// would plant a link.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message for a group of notifications
/// (<https://api.slack.com/messaging/webhooks>): `text` as the fallback and
/// one attachment per alert, coloured by severity.
pub fn slack_body(group: &[&Notification]) -> Value {
    let first = group[0];
    if first.event.is_incident_notice() {
        // Plain enough to read on a phone: one line, no attachments.
        let icon = if first.event == NotifyEvent::Restored {
            "✅"
        } else {
            "🔔"
        };
        return json!({ "text": slack_escape(&format!("{icon} {}", first.summary)) });
    }
    let icon = match (first.status(), first.severity) {
        ("resolved", _) => "✅",
        (_, Some(Level::Critical)) => "🔴",
        _ => "🟠",
    };
    let hosts: Vec<&str> = group
        .iter()
        .map(|n| n.host())
        .filter(|h| !h.is_empty())
        .collect();
    let text = slack_escape(&format!(
        "{icon} [{}{}] {} — {}",
        first.event.as_str().to_uppercase(),
        first
            .severity
            .map_or(String::new(), |s| format!(":{}", s.as_str())),
        first.rule,
        if group.len() == 1 {
            first.summary.clone()
        } else {
            format!("{} alerts: {}", group.len(), hosts.join(", "))
        }
    ));
    let attachments: Vec<Value> = group
        .iter()
        .map(|n| {
            let color = match (n.status(), n.severity) {
                ("resolved", _) => "#2eb886",
                (_, Some(Level::Critical)) => "#d00000",
                _ => "#f2a600",
            };
            let mut fields = vec![
                json!({ "title": "Host", "value": slack_escape(n.host()), "short": true }),
                json!({ "title": "Severity", "value": n.severity.map_or("resolved", Level::as_str), "short": true }),
            ];
            if let Some(v) = n.value {
                fields.push(json!({ "title": "Value", "value": super::engine::format_value(v), "short": true }));
            }
            if let Some(by) = &n.acked_by {
                fields.push(json!({ "title": "Acknowledged by", "value": slack_escape(by), "short": true }));
            }
            let mut a = json!({
                "color": color,
                "title": format!("{} ({})", n.rule, n.event.as_str()),
                "text": slack_escape(&n.summary),
                "fields": fields,
                "footer": format!("nightjar · alert {}", n.alert_id),
                "ts": n.at_ms / 1000,
            });
            if !n.runbook.is_empty() {
                a["title_link"] = json!(n.runbook);
            }
            a
        })
        .collect();
    json!({ "text": text, "attachments": attachments })
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn sample(event: NotifyEvent, severity: Option<Level>) -> Notification {
        Notification {
            id: "abc-7".into(),
            dedup_key: "nightjar-abc-1000".into(),
            event,
            alert_id: "abc".into(),
            rule: "disk_full".into(),
            severity,
            labels: BTreeMap::from([
                ("alertname".into(), "disk_full".into()),
                ("host".into(), "db-1".into()),
                ("team".into(), "storage".into()),
            ]),
            value: Some(97.5),
            summary: "Disk / on db-1 at 97.5%".into(),
            runbook: "https://runbooks.example/disk".into(),
            started_ms: 1000,
            at_ms: 2000,
            acked_by: None,
            ack_note: None,
            incident: None,
            grouped_by_incident: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;

    #[test]
    fn pagerduty_trigger_has_the_documented_shape() {
        let e = pagerduty_event(&sample(NotifyEvent::Firing, Some(Level::Critical)), "KEY");
        assert_eq!(e["routing_key"], "KEY");
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["dedup_key"], "nightjar-abc-1000");
        let p = &e["payload"];
        // Required payload fields: summary, source, severity (one of
        // critical, error, warning, info).
        assert_eq!(p["summary"], "Disk / on db-1 at 97.5%");
        assert_eq!(p["source"], "db-1");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["timestamp"], "1970-01-01T00:00:02.000Z");
        assert_eq!(p["group"], "storage");
        assert_eq!(e["links"][0]["href"], "https://runbooks.example/disk");
        let w = pagerduty_event(&sample(NotifyEvent::Firing, Some(Level::Warning)), "KEY");
        assert_eq!(w["payload"]["severity"], "warning");
    }

    #[test]
    fn pagerduty_ack_and_resolve_carry_only_key_action_and_dedup_key() {
        for (event, action) in [
            (NotifyEvent::Acknowledged, "acknowledge"),
            (NotifyEvent::Resolved, "resolve"),
        ] {
            let e = pagerduty_event(&sample(event, None), "KEY");
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            assert_eq!(keys, vec!["dedup_key", "event_action", "routing_key"]);
            assert_eq!(e["event_action"], action);
            assert_eq!(e["dedup_key"], "nightjar-abc-1000");
        }
    }

    #[test]
    fn slack_message_has_text_and_coloured_attachments() {
        let a = sample(NotifyEvent::Firing, Some(Level::Critical));
        let mut b = a.clone();
        b.labels.insert("host".into(), "db-2".into());
        let body = slack_body(&[&a, &b]);
        assert_eq!(
            body["text"],
            "🔴 [FIRING:critical] disk_full — 2 alerts: db-1, db-2"
        );
        let att = body["attachments"].as_array().unwrap();
        assert_eq!(att.len(), 2);
        assert_eq!(att[0]["color"], "#d00000");
        assert_eq!(att[0]["title_link"], "https://runbooks.example/disk");
        assert_eq!(att[1]["fields"][0]["value"], "db-2");
        let resolved = slack_body(&[&sample(NotifyEvent::Resolved, None)]);
        assert_eq!(
            resolved["text"],
            "✅ [RESOLVED] disk_full — Disk / on db-1 at 97.5%"
        );
        assert_eq!(resolved["attachments"][0]["color"], "#2eb886");
    }

    #[test]
    fn slack_text_from_labels_and_summaries_cannot_ping_or_link() {
        let mut n = sample(NotifyEvent::Firing, Some(Level::Critical));
        n.summary = "<!channel> see <https://evil.example|the fix> & more".into();
        n.labels.insert("host".into(), "<@U123>".into());
        let body = slack_body(&[&n]);
        let all = body.to_string();
        assert!(
            !all.contains("<!channel>") && !all.contains("<@U123>") && !all.contains("<https"),
            "{all}"
        );
        assert_eq!(
            body["attachments"][0]["text"],
            "&lt;!channel&gt; see &lt;https://evil.example|the fix&gt; &amp; more"
        );
        assert_eq!(
            body["attachments"][0]["fields"][0]["value"],
            "&lt;@U123&gt;"
        );
    }

    #[test]
    fn webhook_body_lists_the_group() {
        let a = sample(NotifyEvent::Firing, Some(Level::Warning));
        let body = webhook_body(&[&a], 3000);
        assert_eq!(body["version"], "1");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["alerts"][0]["dedup_key"], "nightjar-abc-1000");
        assert_eq!(body["alerts"][0]["severity"], "warning");
        assert_eq!(body["alerts"][0]["labels"]["host"], "db-1");
        assert_eq!(body["sent_at"], "1970-01-01T00:00:03.000Z");
    }
}
