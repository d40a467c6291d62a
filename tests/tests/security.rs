//! TLS, mTLS, bearer tokens and the host-impersonation guard, end to end
//! with a CA generated in the test (rcgen).

use std::path::Path;
use std::process::{Command, Output};

use nightjar_e2e::pki::Pki;
use nightjar_e2e::*;

struct Secure {
    dir: tempfile::TempDir,
    pki: Pki,
    collector: Collector,
    /// Token files: agent token for `host`, read token, and a stranger's.
    agent_token: std::path::PathBuf,
    read_token: std::path::PathBuf,
    wrong_token: std::path::PathBuf,
    host: String,
}

fn write_token(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p
}

/// A collector with TLS, mTLS for agents, and tokens.
fn secure_collector() -> Secure {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let host = unique_host("secure");
    let tokens = format!(
        "# role name hash\n{}{}",
        token_line("agent", &host, "agent-secret-1"),
        token_line("read", "ops-cli", "read-secret-1")
    );
    std::fs::write(dir.path().join("tokens"), tokens).unwrap();
    let config = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\n[auth]\ntokens_file = \"tokens\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    std::fs::write(dir.path().join("collector.toml"), config).unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &[
            "--config",
            dir.path().join("collector.toml").to_str().unwrap(),
        ],
    );
    let agent_token = write_token(dir.path(), "agent.token", "agent-secret-1");
    let read_token = write_token(dir.path(), "read.token", "read-secret-1");
    let wrong_token = write_token(dir.path(), "wrong.token", "guessed");
    Secure {
        dir,
        pki,
        collector,
        agent_token,
        read_token,
        wrong_token,
        host,
    }
}

impl Secure {
    fn url(&self) -> String {
        format!("https://{}", self.collector.addr)
    }

    /// `nightjar --collector https://… --ca CA [extra] ARGS`.
    fn cli(&self, extra: &[&str], args: &[&str]) -> Output {
        run_to_exit(
            Command::new(bin("nightjar"))
                .args([
                    "--collector",
                    &self.url(),
                    "--ca",
                    self.pki.ca.to_str().unwrap(),
                ])
                .args(extra)
                .args(args),
        )
    }

    fn cli_ok(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(
            &["--token-file", self.read_token.to_str().unwrap()],
            &[args, &["--json"]].concat(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Starts an agent for `host` with the given TLS and token settings.
    fn agent(&self, host: &str, tls: &str, token: Option<&Path>) -> Proc {
        let mut config = String::new();
        if let Some(t) = token {
            config.push_str(&format!("token_file = \"{}\"\n", t.display()));
        }
        config.push_str(&format!(
            "\n[tls]\nca = \"{}\"\n{tls}",
            self.pki.ca.display()
        ));
        let path = self.dir.path().join(format!("agent-{host}.toml"));
        std::fs::write(&path, config).unwrap();
        start_agent(
            &self.url(),
            host,
            &self.dir.path().join(format!("state-{host}")),
            &["--config", path.to_str().unwrap()],
        )
    }

    fn client_cert(&self) -> String {
        format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            self.pki.client_cert.display(),
            self.pki.client_key.display()
        )
    }

    fn refusals(&self, reason: &str) -> usize {
        self.collector
            .proc
            .stderr_lines()
            .iter()
            .filter(|l| l.contains("refused a call") && l.contains(&format!("reason=\"{reason}\"")))
            .count()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_agent_with_its_client_certificate_and_token_gets_in_over_tls() {
    let s = secure_collector();
    let _agent = s.agent(&s.host, &s.client_cert(), Some(&s.agent_token));
    poll("the agent's data over mTLS", || {
        let v = s.cli_ok(&[
            "query",
            "memory_total_bytes",
            "--host",
            &s.host,
            "--since",
            "5m",
            "--step",
            "0",
        ]);
        (!v.as_array()?.is_empty()).then_some(())
    });
    let hosts = s.cli_ok(&["hosts"]);
    assert!(
        hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["host"] == s.host.as_str())
    );
}

#[test]
fn missing_wrong_and_misused_tokens_are_refused_and_logged() {
    let s = secure_collector();
    let out = s.cli(&[], &["hosts"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a bearer token is required"),
        "{}",
        stderr(&out)
    );
    let out = s.cli(
        &["--token-file", s.wrong_token.to_str().unwrap()],
        &["hosts"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown token"), "{}", stderr(&out));
    // An agent token does not open the query API.
    let out = s.cli(
        &["--token-file", s.agent_token.to_str().unwrap()],
        &["hosts"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs a read token"),
        "{}",
        stderr(&out)
    );
    // The right one does.
    s.cli_ok(&["hosts"]);
    // Refusals are logged with the peer address (rate-limited: the first
    // one at least).
    let line = poll("a refusal log line", || {
        s.collector
            .proc
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("refused a call"))
    });
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    // An agent with a wrong token stores nothing.
    let agent = s.agent(&s.host, &s.client_cert(), Some(&s.wrong_token));
    poll("the agent to hear its token is unknown", || {
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("unknown token"))
            .then_some(())
    });
    assert!(
        s.cli_ok(&["series", "memory_total_bytes", "--host", &s.host])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_agent_cannot_send_for_another_host() {
    let s = secure_collector();
    let victim = unique_host("victim");
    // The token belongs to s.host; the agent claims to be `victim`.
    let mut agent = s.agent(&victim, &s.client_cert(), Some(&s.agent_token));
    poll("the impersonation refusal", || {
        (s.refusals("impersonation") > 0).then_some(())
    });
    agent.kill();
    assert!(
        s.cli_ok(&["series", "", "--host", &victim])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let log = s
        .collector
        .proc
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("impersonation"))
        .unwrap();
    assert!(
        log.contains(&format!("token of host \\\"{}\\\"", s.host)),
        "{log}"
    );
}

#[test]
fn without_a_client_certificate_an_agent_is_refused_under_mtls() {
    let s = secure_collector();
    let _agent = s.agent(&s.host, "", Some(&s.agent_token));
    poll("the missing-certificate refusal", || {
        (s.refusals("no_client_certificate") > 0).then_some(())
    });
    assert!(
        s.cli_ok(&["series", "", "--host", &s.host])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_client_trusting_another_ca_fails_the_handshake() {
    let s = secure_collector();
    let out = run_to_exit(
        Command::new(bin("nightjar"))
            .args([
                "--collector",
                &s.url(),
                "--ca",
                s.pki.other_ca.to_str().unwrap(),
            ])
            .args(["--token-file", s.read_token.to_str().unwrap(), "hosts"]),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach collector") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn plaintext_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_exit(
        Command::new(bin("nightjar-collector"))
            .args(["--listen", &format!("0.0.0.0:{}", free_port())])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("is not a loopback address") && err.contains("allow_insecure"),
        "{err}"
    );

    let out = run_to_exit(
        Command::new(bin("nightjar-agent"))
            .args(["--collector", "http://10.255.255.1:7070", "--state-dir"])
            .arg(dir.path().join("state")),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "collector: \"http://10.255.255.1:7070\" sends plaintext to a non-loopback host"
        ),
        "{err}"
    );
}

#[test]
fn a_token_revoked_in_the_file_stops_working_at_sighup() {
    let s = secure_collector();
    assert!(s.cli_ok(&["hosts"]).is_array(), "the read token works");
    // Revoke it and add another: the count of tokens stays the same.
    let tokens = format!(
        "{}{}",
        token_line("agent", &s.host, "agent-secret-1"),
        token_line("read", "ops-cli-2", "read-secret-2")
    );
    std::fs::write(s.dir.path().join("tokens"), tokens).unwrap();
    s.collector.proc.signal("HUP");
    poll("the token file to be reloaded", || {
        s.collector
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("token file reloaded"))
            .then_some(())
    });
    let revoked = s.cli(
        &["--token-file", s.read_token.to_str().unwrap()],
        &["hosts"],
    );
    assert!(!revoked.status.success(), "a revoked token must not work");
    assert!(
        stderr(&revoked).contains("unknown token"),
        "{}",
        stderr(&revoked)
    );
    let new = write_token(s.dir.path(), "read2.token", "read-secret-2");
    let out = s.cli(&["--token-file", new.to_str().unwrap()], &["hosts"]);
    assert!(
        out.status.success(),
        "the new token works: {}",
        stderr(&out)
    );
}

#[test]
fn the_cli_does_not_send_a_token_in_plaintext_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "read.token", "read-secret-1");
    let out = run_to_exit(Command::new(bin("nightjar")).args([
        "--collector",
        "http://10.255.255.1:7070",
        "--token-file",
        token.to_str().unwrap(),
        "hosts",
    ]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--token-file") && err.contains("plaintext") && err.contains("https://"),
        "{err}"
    );
}

#[test]
fn grpc_web_on_the_http_port_asks_for_the_same_tokens() {
    let s = secure_collector();
    let status_port = poll("the status port", || {
        status_addr(&s.collector.proc.stderr_lines())
    });
    let ask = |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (_, head, body) = http_post(
            status_port,
            "/nightjar.v1.BoardService/ListServices",
            &headers,
            &[0, 0, 0, 0, 0],
        );
        format!("{head}\n{}", String::from_utf8_lossy(&body))
    };
    let without = ask(None);
    assert!(
        without.contains("grpc-status: 16") || without.contains("grpc-status:16"),
        "{without}"
    );
    let with = ask(Some("read-secret-1"));
    assert!(
        with.contains("grpc-status:0") || with.contains("grpc-status: 0"),
        "{with}"
    );
    let agent = ask(Some("agent-secret-1"));
    assert!(
        agent.contains("grpc-status: 7") || agent.contains("grpc-status:7"),
        "an agent token cannot read: {agent}"
    );
}
