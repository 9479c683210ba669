//! The command line, through the real binary.

use std::process::Command;

fn hookgate(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("HOOKGATE_ADMIN_TOKEN")
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hookgate.toml");
    std::fs::write(&path, text).expect("write");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hookgate.toml");
    let (code, out, err) = hookgate(&["check-config", "--config", example], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (2 sources, 2 endpoints)"), "{out}");
}

#[test]
fn check_config_names_the_key_and_the_problem() {
    let cases = [
        (
            "[[endpoints]]\nid = \"a\"\nurl = \"https://a.example\"\nrate_limit = { per_second = 0 }\n",
            "endpoints[0].rate_limit.per_second: must be > 0",
        ),
        (
            "[ingress]\nlisten = \"127.0.0.1:1\"\ncolour = \"red\"\n",
            "ingress.colour: unknown field",
        ),
        (
            "[delivery]\ntimeout = \"soon\"\n",
            "delivery.timeout: invalid duration \"soon\"",
        ),
        (
            "[[sources]]\nid = \"s\"\nverify = \"carrier-pigeon\"\n",
            "sources[0].verify: unknown variant",
        ),
        (
            "[[endpoints]]\nid = \"a\"\nurl = \"https://a.example\"\nfilter = { body = { x = { \"$gte\" = \"1\" } } }\n",
            "endpoints[0].filter.body.x.$gte: expected a number",
        ),
        (
            "[[endpoints]]\nid = \"a\"\nurl = \"https://a.example\"\ntransform = \".body |\"\n",
            "endpoints[0].transform: transform:",
        ),
        (
            "[ingress\n",
            "unclosed table, expected `]` (at line 1, column 9)",
        ),
    ];
    for (text, expected) in cases {
        let (_dir, path) = write_config(text);
        let (code, _, err) = hookgate(&["check-config", "--config", &path], None);
        assert_eq!(code, 2, "{text}");
        assert!(
            err.contains(expected),
            "for {text:?} expected {expected:?} in {err:?}"
        );
    }
    let (code, _, err) = hookgate(
        &["check-config", "--config", "/nonexistent/hookgate.toml"],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/hookgate.toml"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_before_touching_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let text = format!(
        "data_dir = \"{}\"\n[[endpoints]]\nid = \"a\"\nurl = \"not a url\"\n",
        data.display()
    );
    let (_cfg_dir, path) = write_config(&text);
    let (code, _, err) = hookgate(&["serve", "--config", &path], None);
    assert_eq!(code, 2);
    assert!(err.contains("endpoints[0].url"), "{err}");
    assert!(
        !data.exists(),
        "no data directory may be created for a bad config"
    );
}

#[test]
fn sign_prints_the_published_standard_webhooks_vector() {
    // Vector SW-1.
    let (code, out, err) = hookgate(
        &[
            "sign",
            "--scheme",
            "standard-webhooks",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "--timestamp",
            "1614265330",
        ],
        Some(br#"{"test": 2432232314}"#),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\nwebhook-timestamp: 1614265330\n\
         webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n"
    );
}

#[test]
fn sign_hmac_matches_githubs_published_vector() {
    let (code, out, err) = hookgate(
        &[
            "sign",
            "--scheme",
            "hmac",
            "--secret",
            "It's a Secret to Everybody",
            "--header",
            "x-hub-signature-256",
            "--prefix",
            "sha256=",
        ],
        Some(b"Hello, World!"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "x-hub-signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\n"
    );
    let (code, _, err) = hookgate(
        &[
            "sign",
            "--scheme",
            "standard-webhooks",
            "--secret",
            "whsec_!!",
        ],
        Some(b""),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--secret"), "{err}");
}

async fn hookgate_async(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_remove("HOOKGATE_ADMIN_TOKEN")
        .env_remove("HOOKGATE_URL")
        .output()
        .await
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_against_a_live_server() {
    use crate::harness::*;
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let config = format!(
        "{}\n[admin]\ntoken = \"cli-token\"\n[[endpoints]]\nid = \"a\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source(),
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, answer) = send(&gw.url("orders"), "msg_cli", r#"{"type":"order.created"}"#).await;
    let id = event_id(&answer);
    gw.settled(id).await;
    let conn = ["--url", gw.admin.as_str(), "--token", "cli-token"];
    let run = |args: &[&str]| {
        let all: Vec<String> = args
            .iter()
            .chain(conn.iter())
            .map(|s| s.to_string())
            .collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            hookgate_async(&refs).await
        }
    };

    let (code, out, err) = run(&["events", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("EVENT") && out.contains(&id.to_string()) && out.contains("a:dead"),
        "{out}"
    );
    // --contains searches the payload, case-sensitively.
    let (code, out, err) = run(&["events", "list", "--contains", "order.created"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id.to_string()), "{out}");
    let (code, out, err) = run(&["events", "list", "--contains", "Order.created"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&id.to_string()), "{out}");

    let (code, out, err) = run(&["dlq", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(body["data"][0]["event_id"], id.to_string());
    let delivery = body["data"][0]["delivery_id"]
        .as_str()
        .expect("id")
        .to_string();

    let (code, out, _) = run(&["deliveries", "show", &delivery]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("status    dead") && out.contains("HTTP 500"),
        "{out}"
    );
    // Every cell comes from the API's typed answer: nulls print as `-`, numbers as numbers.
    assert!(
        out.contains("next      -\n")
            && out.contains(" ms")
            && out.lines().any(|l| l.starts_with("1 ")),
        "{out}"
    );

    let (code, out, err) = run(&["events", "show", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("type      order.created\n") && out.contains("source    orders\n"),
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(&delivery))
        .expect("a row for the delivery")
        .split_whitespace()
        .collect();
    assert_eq!(row[1..6], ["a", "dead", "1", "-", "500"], "{out}");
    assert_eq!(
        row[6..].join(" "),
        "gave up after 1 attempts; last error: HTTP 500",
        "{out}"
    );

    let (code, out, err) = run(&["dlq", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("DELIVERY") && out.contains(&delivery) && out.contains("order.created"),
        "{out}"
    );

    receiver.set_default_status(200);
    let (code, out, err) = run(&["dlq", "replay", "--endpoint", "a"]).await;
    assert_eq!((code, out.trim()), (0, "replayed 1"), "{err}");
    receiver.wait_for(2).await;

    let (code, out, _) = run(&["endpoints", "pause", "a"]).await;
    assert_eq!((code, out.trim()), (0, "endpoint a paused"));
    let (code, out, _) = run(&["endpoints", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("a ") && l.contains("paused") && l.contains("closed")),
        "{out}"
    );
    assert!(
        out.starts_with("ENDPOINT") && out.contains("BREAKER") && out.contains("HELD"),
        "{out}"
    );
    // Enabling an endpoint whose breaker is closed changes nothing, and says so.
    let (code, out, err) = run(&["endpoints", "enable", "a", "--discard-held"]).await;
    assert_eq!(
        (code, out.trim()),
        (0, "endpoint a enabled: 0 held, 0 discarded"),
        "{err}"
    );

    // A wrong token, an unknown id, and no server at all: clear errors, non-zero exits.
    let (code, _, err) =
        hookgate_async(&["events", "list", "--url", &gw.admin, "--token", "nope"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("refused the token"), "{err}");
    let (code, _, err) = run(&["events", "show", "evt_nope"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("404") && err.contains("unknown_event"),
        "{err}"
    );
    let (code, _, err) =
        hookgate_async(&["dlq", "list", "--url", "http://127.0.0.1:9", "--token", "x"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot reach the admin API at http://127.0.0.1:9"),
        "{err}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_works_offline_and_refuses_a_store_in_use() {
    use crate::harness::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_in(dir.path(), &orders_source()).await;
    for i in 0..50 {
        send(&gw.url("orders"), &format!("msg_c{i}"), r#"{"type":"a"}"#).await;
    }
    let data_dir = dir.path().to_string_lossy().into_owned();
    let (code, _, err) = hookgate_async(&["compact", "--data-dir", &data_dir]).await;
    assert_eq!(code, 2, "a running gateway holds the store");
    assert!(err.contains("cannot open"), "{err}");
    gw.stop().await;
    let (code, out, err) = hookgate_async(&["compact", "--data-dir", &data_dir]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bytes before"), "{out}");
    // Still a working store afterwards.
    assert_eq!(
        open_store(dir.path()).event_ids().await.expect("ids").len(),
        50
    );
}

#[tokio::test]
async fn filter_and_transform_commands_against_a_live_server() {
    use crate::harness::*;
    let (big, t) = (Receiver::start().await, Receiver::start().await);
    let config = format!(
        "{}\n[admin]\ntoken = \"cli-token\"\n\
         [[endpoints]]\nid = \"big\"\nurl = \"{}\"\nfilter = {{ body = {{ amount = {{ \"$gte\" = 1000 }} }} }}\n\
         [[endpoints]]\nid = \"t\"\nurl = \"{}\"\ntransform = '{{body: {{n: .body.amount}}}}'\n",
        orders_source(),
        big.url,
        t.url
    );
    let (gw, dir) = Gateway::start(&config).await;
    let (_, answer) = send(&gw.url("orders"), "msg_small", r#"{"amount":5}"#).await;
    let id = event_id(&answer).to_string();
    gw.settled(event_id(&answer)).await;
    let conn = ["--url", gw.admin.as_str(), "--token", "cli-token"];
    let run = |args: &[&str]| {
        let all: Vec<String> = args
            .iter()
            .chain(conn.iter())
            .map(|s| s.to_string())
            .collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            hookgate_async(&refs).await
        }
    };
    // The event's page says where it did not go, and why.
    let (code, out, err) = run(&["events", "show", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("not sent to"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("big") && l.contains("body.amount.$gte")),
        "{out}"
    );
    let (code, out, err) = run(&["endpoints", "test-filter", "big", "--event", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("not matched (filter at body.amount.$gte)"),
        "{out}"
    );
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"amount": 5000}"#).expect("write");
    let payload = payload.to_string_lossy().into_owned();
    let (code, out, err) = run(&["endpoints", "test-filter", "big", "--body", &payload]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("matched"), "{out}");
    let (code, out, err) = run(&["endpoints", "test-transform", "t", "--event", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_end().ends_with(r#"{"n":5}"#), "{out}");
    let (code, out, err) = run(&[
        "endpoints",
        "test-transform",
        "t",
        "--body",
        &payload,
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["result"].as_str(), v["body"].as_str()),
        (Some("send"), Some(r#"{"n":5000}"#))
    );
    // A bad sample is refused with the field named, and nothing is sent.
    let (code, _, err) = run(&["endpoints", "test-filter", "big"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("body"), "{err}");
    assert_eq!(big.count(), 0);
    gw.stop().await;
}
