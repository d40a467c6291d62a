//! Operators' commands: acknowledge an alert, add or expire a silence,
//! reload the rules. Each is one durable write before it answers.

use super::commit::OnFailure;
use super::{Alerter, WatchEvent};
use crate::engine::Alert;
use crate::rules::RuleError;
use crate::silence::Silence;
use crate::store::{Changes, HistoryRecord};

impl Alerter {
    /// Acknowledges firing alert `id`: no more repeats or escalation, and
    /// the hooks (PagerDuty: acknowledge) are told.
    pub fn ack(&self, id: &str, by: &str, note: &str, now: i64) -> Result<Alert, String> {
        let mut engine = self.engine.lock().expect("engine lock");
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        let current = engine
            .get_mut(id)
            .ok_or_else(|| format!("no alert has id {id:?}"))?;
        if current.state.level.is_none() {
            return Err(format!("alert {id} is not firing"));
        }
        // Changed on a copy: the engine takes it only once it is durable.
        let mut alert = current.clone();
        let mut changes = Changes::default();
        self.ack_changes(&config, &silences, &mut alert, by, note, now, &mut changes);
        let mut book = self.book.lock().expect("incidents lock");
        let incident = self.ack_in_incident(&book, &alert, by, note, now, &mut changes);
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        if let Some(incident) = incident {
            book.incidents.insert(incident.number, incident);
        }
        drop(book);
        if let Some(current) = engine.get_mut(id) {
            current.ack = alert.ack.clone();
        }
        self.wake.notify_one();
        let _ = self.watchers.send(WatchEvent {
            at_ms: now,
            kind: "acknowledged".into(),
            alert: alert.clone(),
        });
        Ok(alert)
    }

    /// Adds a silence; its matchers must compile.
    pub fn add_silence(&self, mut silence: Silence, now: i64) -> Result<Silence, String> {
        crate::silence::compile(&silence.matchers)?;
        if silence.matchers.is_empty() {
            return Err("matchers: a silence needs at least one matcher".into());
        }
        if silence.ends_ms <= silence.starts_ms {
            return Err("ends before it starts".into());
        }
        silence.id = format!("s{}", self.store.next_seq());
        silence.created_ms = now;
        let mut changes = Changes {
            silences: vec![silence.clone()],
            history: vec![HistoryRecord {
                at_ms: now,
                alert_id: silence.id.clone(),
                rule: String::new(),
                kind: "silence_added".into(),
                severity: None,
                value: None,
                detail: format!(
                    "{} by {}: {}",
                    silence.matchers.join(","),
                    silence.author,
                    silence.comment
                ),
            }],
            ..Changes::default()
        };
        self.silence_in_incidents(&silence, now, &mut changes);
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        self.silences
            .write()
            .expect("silences lock")
            .push(silence.clone());
        Ok(silence)
    }

    /// Ends silence `id` now.
    pub fn expire_silence(&self, id: &str, now: i64) -> Result<Silence, String> {
        let mut silences = self.silences.write().expect("silences lock");
        let current = silences
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("no silence has id {id:?}"))?;
        // Changed on a copy: memory takes it only once it is durable.
        let mut silence = current.clone();
        silence.ends_ms = silence.ends_ms.min(now);
        let changes = Changes {
            silences: vec![silence.clone()],
            history: vec![HistoryRecord {
                at_ms: now,
                alert_id: id.to_owned(),
                rule: String::new(),
                kind: "silence_expired".into(),
                severity: None,
                value: None,
                detail: String::new(),
            }],
            ..Changes::default()
        };
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        *current = silence.clone();
        Ok(silence)
    }

    /// Reloads the rules from their source, keeping the state of unchanged
    /// rules. On error nothing changes.
    pub fn reload_rules(&self, now: i64) -> Result<usize, RuleError> {
        let rules = self.source.read().expect("rule source lock").load()?;
        let count = rules.len();
        let mut engine = self.engine.lock().expect("engine lock");
        let (events, dropped) = engine.replace_rules(rules, now);
        self.commit(&mut engine, events, dropped, now);
        tracing::info!(rules = count, "alert rules loaded");
        Ok(count)
    }
}
