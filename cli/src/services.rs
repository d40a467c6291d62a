//! `nightjar services` and `nightjar service NAME`: the services' states
//! as the board shows them (`BoardService`), a table for people or JSON.

use nightjar_proto::v1 as pb;
use pb::board_service_client::BoardServiceClient;
use serde_json::{Value, json};

use crate::Conn;
use crate::table;

/// The word for a health value: `ok`, `unknown`, `warning`, `critical`.
pub fn health_word(health: i32) -> &'static str {
    match pb::Health::try_from(health).unwrap_or(pb::Health::Unspecified) {
        pb::Health::Ok => "ok",
        pb::Health::Unknown => "unknown",
        pb::Health::Warning => "warning",
        pb::Health::Critical => "critical",
        pb::Health::Unspecified => "-",
    }
}

fn service_json(s: &pb::ServiceStatus) -> Value {
    json!({
        "name": s.name,
        "description": s.description,
        "team": s.team,
        "weight": s.weight,
        "health": health_word(s.health),
        "components": s.components.iter().map(|c| json!({
            "name": c.name,
            "layer": c.layer,
            "health": health_word(c.health),
            "alert_ids": c.alert_ids,
            "reason": c.reason,
            "selector": c.selector,
        })).collect::<Vec<_>>(),
        "dependencies": s.dependencies.iter().map(|d| json!({
            "service": d.service,
            "health": health_word(d.health),
        })).collect::<Vec<_>>(),
        "contacts": s.contacts.iter().map(|c| json!({
            "team": c.team, "hours": c.hours, "phone": c.phone, "email": c.email, "chat": c.chat,
        })).collect::<Vec<_>>(),
    })
}

async fn list(client: &mut BoardServiceClient<Conn>) -> anyhow::Result<Vec<pb::ServiceStatus>> {
    Ok(client
        .list_services(pb::ListServicesRequest {})
        .await?
        .into_inner()
        .services)
}

/// `nightjar services`: one row per service.
pub async fn services(
    client: &mut BoardServiceClient<Conn>,
    as_json: bool,
) -> anyhow::Result<String> {
    let services = list(client).await?;
    if as_json {
        let rows: Vec<Value> = services.iter().map(service_json).collect();
        return Ok(format!("{}\n", Value::Array(rows)));
    }
    if services.is_empty() {
        return Ok("no services are declared (collector.toml: services = [...])\n".into());
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let count =
                |h: pb::Health| s.components.iter().filter(|c| c.health == h as i32).count();
            let worst = s
                .components
                .iter()
                .max_by_key(|c| c.health)
                .filter(|c| c.health > pb::Health::Ok as i32)
                .map_or(String::new(), |c| format!("{}: {}", c.name, c.reason));
            vec![
                s.name.clone(),
                health_word(s.health).to_uppercase(),
                s.team.clone(),
                format!(
                    "{} ok, {} unknown, {} warning, {} critical",
                    count(pb::Health::Ok),
                    count(pb::Health::Unknown),
                    count(pb::Health::Warning),
                    count(pb::Health::Critical)
                ),
                worst,
            ]
        })
        .collect();
    Ok(table::render(
        &["SERVICE", "STATE", "TEAM", "COMPONENTS", "WHY"],
        &rows,
    ))
}

/// `nightjar service NAME`: its layers, components, dependencies and
/// contacts.
pub async fn service(
    client: &mut BoardServiceClient<Conn>,
    name: &str,
    as_json: bool,
) -> anyhow::Result<String> {
    let services = list(client).await?;
    let Some(s) = services.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no service is named {name:?}; there are: {}",
            known.join(", ")
        );
    };
    if as_json {
        return Ok(format!("{}\n", service_json(s)));
    }
    let mut out = format!("{}  {}", s.name, health_word(s.health).to_uppercase());
    if !s.team.is_empty() {
        out.push_str(&format!("  team {}", s.team));
    }
    out.push('\n');
    if !s.description.is_empty() {
        out.push_str(&format!("{}\n", s.description));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = s
        .components
        .iter()
        .map(|c| {
            vec![
                c.layer.clone(),
                c.name.clone(),
                health_word(c.health).to_uppercase(),
                c.selector.clone(),
                c.reason.clone(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["LAYER", "COMPONENT", "STATE", "SELECTS", "WHY"],
        &rows,
    ));
    if !s.dependencies.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .dependencies
            .iter()
            .map(|d| vec![d.service.clone(), health_word(d.health).to_uppercase()])
            .collect();
        out.push_str(&table::render(&["DEPENDS ON", "STATE"], &rows));
    }
    if !s.contacts.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .contacts
            .iter()
            .map(|c| {
                vec![
                    c.team.clone(),
                    c.hours.clone(),
                    c.phone.clone(),
                    c.email.clone(),
                    c.chat.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["CONTACT", "HOURS", "PHONE", "E-MAIL", "CHAT"],
            &rows,
        ));
    }
    Ok(out)
}
