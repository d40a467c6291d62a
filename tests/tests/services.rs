//! Services on the real collector: service files checked at start and
//! reloaded on SIGHUP; states from real alerts and real data, as
//! `nightjar services` and `nightjar service NAME` show them.

use std::path::Path;

use nightjar_e2e::feeder::Feeder;
use nightjar_e2e::*;
use serde_json::Value;

const RULES: &str = r#"
[[rule]]
name = "probe_high"
metric = "probe"
warning = 50
critical = 90
summary = "probe at {{value}}"
"#;

fn services_file(host: &str) -> String {
    format!(
        r#"
[[service]]
name = "shop"
description = "Web shop"
team = "web"

[[service.contact]]
team = "web on call"
hours = "Mon-Fri 08:00-18:00 Europe/London"
phone = "+44 20 7946 0000"

[[service.component]]
name = "web host"
layer = "machine"
matchers = ["host={host}"]

[[service.component]]
name = "orders"
layer = "business"
metric = "orders_per_minute"
"#
    )
}

fn start(dir: &Path, services: &str) -> Collector {
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    std::fs::write(dir.join("services.toml"), services).unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        "rules = [\"rules.toml\"]\nservices = [\"services.toml\"]\n\n[alerting]\nhost_down_after = 0\n",
    )
    .unwrap();
    Collector::start_with(
        free_port(),
        &dir.join("data"),
        &["--config", dir.join("collector.toml").to_str().unwrap()],
    )
}

fn shop(c: &Collector) -> Value {
    c.cli_json(&["service", "shop"])
}

fn health(c: &Collector) -> String {
    shop(c)["health"].as_str().unwrap().to_owned()
}

#[test]
fn a_service_is_unknown_without_data_and_follows_its_alerts_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let host = unique_host("svc");
    let c = start(dir.path(), &services_file(&host));
    let first = shop(&c);
    assert_eq!(
        first["health"], "unknown",
        "no data is grey, never green: {first}"
    );
    assert_eq!(first["contacts"][0]["phone"], "+44 20 7946 0000");
    assert_eq!(first["components"][1]["layer"], "business");

    let mut feed = Feeder::new(&c.url(), &host);
    feed.send("probe", &[], 10.0);
    let after_host = shop(&c);
    assert_eq!(after_host["components"][0]["health"], "ok", "{after_host}");
    assert_eq!(
        after_host["health"], "unknown",
        "the business layer still has no data"
    );
    feed.send("orders_per_minute", &[], 20.0);
    assert_eq!(health(&c), "ok");
    feed.send("probe", &[], 60.0);
    assert_eq!(health(&c), "warning");
    feed.send("probe", &[], 95.0);
    let red = shop(&c);
    assert_eq!(red["health"], "critical");
    assert_eq!(red["components"][0]["reason"], "probe at 95");
    assert_eq!(
        red["components"][0]["alert_ids"].as_array().unwrap().len(),
        1
    );
    feed.send("probe", &[], 10.0);
    assert_eq!(health(&c), "ok");

    let table = c.cli(&["services"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("SERVICE") && text.contains("shop") && text.contains("OK"),
        "{text}"
    );
}

#[test]
fn a_bad_service_file_stops_the_start_and_sighup_reloads_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "[[service]]\nname = \"shop\"\ndepends_on = [\"ghost\"]\n";
    std::fs::write(dir.path().join("services.toml"), bad).unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    std::fs::write(
        dir.path().join("collector.toml"),
        "rules = [\"rules.toml\"]\nservices = [\"services.toml\"]\n",
    )
    .unwrap();
    let out =
        collector_refusing_to_start(&dir.path().join("collector.toml"), &dir.path().join("data"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "services.toml:1: service \"shop\": depends_on: no service is named \"ghost\""
        ),
        "{err}"
    );

    let host = unique_host("svcreload");
    let c = start(dir.path(), &services_file(&host));
    assert_eq!(c.cli_json(&["services"]).as_array().unwrap().len(), 1);
    let more = format!(
        "{}\n[[service]]\nname = \"search\"\n[[service.component]]\nname = \"index\"\nlayer = \"application\"\nmatchers = [\"host={host}\"]\n",
        services_file(&host)
    );
    std::fs::write(dir.path().join("services.toml"), more).unwrap();
    c.proc.signal("HUP");
    poll("the services to be reloaded", || {
        (c.cli_json(&["services"]).as_array()?.len() == 2).then_some(())
    });
    // A broken file on the next SIGHUP keeps what runs.
    std::fs::write(dir.path().join("services.toml"), bad).unwrap();
    c.proc.signal("HUP");
    poll("the refused reload to be logged", || {
        c.proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("services not reloaded"))
            .then_some(())
    });
    assert_eq!(c.cli_json(&["services"]).as_array().unwrap().len(), 2);
    let missing = c.cli(&["service", "nope"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no service is named \"nope\"; there are: shop, search"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn browsers_read_the_board_through_grpc_web_on_the_http_port() {
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let host = unique_host("grpcweb");
    let c = start(dir.path(), &services_file(&host));
    let status_port = poll("the status port", || status_addr(&c.proc.stderr_lines()));
    // One gRPC-web frame: flag 0, length 0, an empty ListServicesRequest.
    let (status, head, body) = http_post(
        status_port,
        "/nightjar.v1.BoardService/ListServices",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &[0, 0, 0, 0, 0],
    );
    assert!(status.contains("200"), "{head}");
    assert!(
        head.to_lowercase().contains("application/grpc-web"),
        "{head}"
    );
    assert_eq!(body[0], 0, "a data frame first");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let answer = nightjar_proto::v1::ListServicesResponse::decode(&body[5..5 + len]).unwrap();
    assert_eq!(answer.services.len(), 1);
    assert_eq!(answer.services[0].name, "shop");
    assert_eq!(answer.services[0].contacts[0].phone, "+44 20 7946 0000");
    let trailer = String::from_utf8_lossy(&body[5 + len + 5..]);
    assert_eq!(body[5 + len], 0x80, "then the trailer frame");
    assert!(trailer.contains("grpc-status:0"), "{trailer}");
    // The plain HTTP routes stay as they were (healthy once the first
    // alert sweep has run, which may be after the first gRPC-web answer).
    poll("/healthz beside the gRPC-web routes", || {
        (http_get(status_port, "/healthz").0 == 200).then_some(())
    });
}
