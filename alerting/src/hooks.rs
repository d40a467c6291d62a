//! Delivering one message (a group of notifications) through one hook:
//! HTTP POST for webhook, PagerDuty and Slack; a child process for exec.

use std::process::Stdio;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

use super::config::{Hook, HookKind};
use super::notify::{Notification, pagerduty_event, slack_body, webhook_body};

/// The header carrying the webhook body's HMAC-SHA256: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Nightjar-Signature";

/// How a delivery went.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hook took it.
    Accepted,
    /// Try again later (network error, timeout, 5xx, 429).
    Retry(String),
    /// The hook refused it for good (4xx): retrying cannot help.
    Rejected(String),
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn post(
    client: &reqwest::Client,
    hook: &Hook,
    url: &str,
    body: Vec<u8>,
    secret: Option<&str>,
) -> Outcome {
    let mut request = client
        .post(url)
        .timeout(hook.timeout)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("nightjar/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Outcome::Accepted
            } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                let text = response.text().await.unwrap_or_default();
                Outcome::Rejected(format!(
                    "HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                ))
            } else {
                Outcome::Retry(format!("HTTP {status}"))
            }
        }
        Err(error) => Outcome::Retry(error_chain(&error)),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn exec(hook: &Hook, command: &[String], body: Vec<u8>) -> Outcome {
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Outcome::Retry(format!("cannot run {:?}: {e}", command[0])),
    };
    let mut stdin = child.stdin.take().expect("stdin piped");
    let run = async move {
        // A command that ignores stdin may close it early; that is its business.
        let _ = stdin.write_all(&body).await;
        drop(stdin);
        child.wait_with_output().await
    };
    match tokio::time::timeout(hook.timeout, run).await {
        Err(_) => Outcome::Retry(format!(
            "{:?} did not finish within {:?}",
            command[0], hook.timeout
        )),
        Ok(Err(e)) => Outcome::Retry(format!("{:?}: {e}", command[0])),
        Ok(Ok(out)) if out.status.success() => Outcome::Accepted,
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Outcome::Retry(format!(
                "{:?} exited with {}: {}",
                command[0],
                out.status,
                stderr.trim()
            ))
        }
    }
}

/// Delivers `group` (notifications of one rule and event) through `hook`.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &Hook,
    group: &[&Notification],
    now_ms: i64,
) -> Outcome {
    let to_vec = |v: serde_json::Value| serde_json::to_vec(&v).expect("JSON serializes");
    match &hook.kind {
        HookKind::Webhook { url, secret } => {
            post(
                client,
                hook,
                url,
                to_vec(webhook_body(group, now_ms)),
                secret.as_deref(),
            )
            .await
        }
        HookKind::Slack { url } => post(client, hook, url, to_vec(slack_body(group)), None).await,
        HookKind::PagerDuty { url, routing_key } => {
            // PagerDuty takes one event per request; it deduplicates by
            // dedup_key, so resending the whole group after a partial failure is safe.
            for n in group {
                let outcome = post(
                    client,
                    hook,
                    url,
                    to_vec(pagerduty_event(n, routing_key)),
                    None,
                )
                .await;
                if outcome != Outcome::Accepted {
                    return outcome;
                }
            }
            Outcome::Accepted
        }
        HookKind::Exec { command } => {
            exec(hook, command, to_vec(webhook_body(group, now_ms))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn hook(command: &[&str]) -> Hook {
        Hook {
            name: "x".into(),
            kind: HookKind::Exec {
                command: command.iter().map(|s| s.to_string()).collect(),
            },
            timeout: std::time::Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn exec_passes_json_on_stdin_and_judges_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let n = super::super::notify::tests_support::sample(
            super::super::notify::NotifyEvent::Firing,
            Some(super::super::state::Level::Critical),
        );
        let script = format!("cat > {}", out.display());
        let h = hook(&["sh", "-c", &script]);
        let HookKind::Exec { command } = &h.kind else {
            unreachable!()
        };
        assert_eq!(
            exec(&h, command, b"{\"a\":1}".to_vec()).await,
            Outcome::Accepted
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"a\":1}");
        let client = reqwest::Client::new();
        assert_eq!(deliver(&client, &h, &[&n], 0).await, Outcome::Accepted);
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(body["alerts"][0]["rule"], "disk_full");
        let failing = hook(&["sh", "-c", "echo broken >&2; exit 3"]);
        let HookKind::Exec { command } = &failing.kind else {
            unreachable!()
        };
        let Outcome::Retry(e) = exec(&failing, command, Vec::new()).await else {
            panic!()
        };
        assert!(e.contains("broken"), "{e}");
        let mut slow = hook(&["sleep", "5"]);
        slow.timeout = std::time::Duration::from_millis(100);
        let HookKind::Exec { command } = &slow.kind else {
            unreachable!()
        };
        let Outcome::Retry(e) = exec(&slow, command, Vec::new()).await else {
            panic!()
        };
        assert!(e.contains("did not finish"), "{e}");
    }
}
