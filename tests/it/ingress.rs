//! Ingress end to end: what a sender sees, what a receiver gets, what is on disk.

use crate::harness::*;

fn config(receiver: &str) -> String {
    format!(
        "{}\n[[endpoints]]\nid = \"receiver\"\nurl = \"{receiver}\"\nsecret = \"{OUTBOUND_SECRET}\"\n",
        orders_source()
    )
}

#[tokio::test]
async fn signed_webhook_arrives_byte_identical_and_verifiable() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    // Odd spacing, unicode and a trailing newline: bytes a re-serializer would change.
    let body = "{ \"type\":\"order.created\",  \"amount\": 1.50, \"name\":\"Zo\u{eb}\" }\n";
    let (status, answer) = send(&gw.url("orders"), "msg_1", body).await;
    assert_eq!(status, 202, "{answer}");
    let event_id = event_id(&answer).to_string();

    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.body.as_ref(), body.as_bytes());
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("webhook-id"), event_id);
    assert_eq!(r.header("hookgate-source"), "orders");
    assert_eq!(r.header("hookgate-event-type"), "order.created");
    assert_eq!(r.header("hookgate-attempt"), "1");
    // An independent implementation (the standardwebhooks crate) accepts our signature.
    let wh = standardwebhooks::Webhook::new(OUTBOUND_SECRET).expect("secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers[name].clone());
    }
    wh.verify(&r.body, &headers)
        .expect("the standardwebhooks crate verifies the delivery");
    let other = standardwebhooks::Webhook::new(INBOUND_SECRET).expect("secret");
    assert!(
        other.verify(&r.body, &headers).is_err(),
        "a different secret must not verify"
    );
    gw.stop().await;
}

#[tokio::test]
async fn svix_header_names_are_accepted() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let body = r#"{"type":"order.paid"}"#;
    let headers: Vec<(String, String)> =
        signed(INBOUND_SECRET, "msg_svix", now_secs(), body.as_bytes())
            .into_iter()
            .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
            .collect();
    let (status, answer) = post(&gw.url("orders"), &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    receiver.wait_for(1).await;
    gw.stop().await;
}

#[tokio::test]
async fn duplicate_answers_200_with_the_first_id_and_is_delivered_once() {
    let receiver = Receiver::start().await;
    let (gw, dir) = Gateway::start(&config(&receiver.url)).await;
    let body = r#"{"type":"order.created"}"#;
    let (s1, first) = send(&gw.url("orders"), "msg_dup", body).await;
    // The provider retries: a new timestamp and signature, the same delivery id.
    let (s2, second) = send(&gw.url("orders"), "msg_dup", body).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(second["event_id"], first["event_id"]);
    assert_eq!(second["duplicate"], true);
    // A later, distinct event: once it has arrived, the first (due earlier) has too.
    let (s3, _) = send(&gw.url("orders"), "msg_other", body).await;
    assert_eq!(s3, 202);
    let got = receiver.wait_for(2).await;
    gw.stop().await;
    let first_id = first["event_id"].as_str().expect("id");
    assert_eq!(
        got.iter()
            .filter(|r| r.header("webhook-id") == first_id)
            .count(),
        1
    );
    assert_eq!(
        open_store(dir.path()).event_ids().await.expect("ids").len(),
        2,
        "the duplicate stored nothing"
    );
}

#[tokio::test]
async fn refused_requests_answer_with_their_code_and_store_nothing() {
    let receiver = Receiver::start().await;
    let (gw, dir) = Gateway::start(&format!(
        "{}\n[ingress]\nmax_body_bytes = 64\n",
        config(&receiver.url)
    ))
    .await;
    let body = r#"{"type":"order.created"}"#;
    let url = gw.url("orders");

    let mut headers = signed(INBOUND_SECRET, "msg_bad", now_secs(), body.as_bytes());
    headers[2].1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let (status, answer) = post(&url, &headers, body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );

    let headers = signed(INBOUND_SECRET, "msg_old", now_secs() - 600, body.as_bytes());
    let (status, answer) = post(&url, &headers, body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("stale_timestamp"))
    );

    let headers = signed(INBOUND_SECRET, "msg_tampered", now_secs(), body.as_bytes());
    let (status, answer) = post(&url, &headers, r#"{"type":"order.refunded"}"#).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );

    let (status, answer) = post(&url, &[], body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );

    let (status, answer) = send(&gw.url("nope"), "msg_x", body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_source"))
    );

    let big = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(100));
    let (status, answer) = send(&url, "msg_big", &big).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // A NUL in the event type (JSON allows it) cannot be stored in PostgreSQL's text: refused
    // alone here, rather than failing the whole group commit it would have joined there.
    let (status, answer) = send(&url, "msg_nul", r#"{"type":"order.\u0000paid"}"#).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(error_message(&answer).contains("event type"), "{answer}");

    // A GET is not a webhook.
    let resp = client().get(&url).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 405);

    gw.stop().await;
    assert!(
        open_store(dir.path())
            .event_ids()
            .await
            .expect("ids")
            .is_empty(),
        "nothing may be stored"
    );
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn oversize_chunked_body_is_refused_while_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let receiver = Receiver::start().await;
    let (gw, dir) = Gateway::start(&format!(
        "{}\n[ingress]\nmax_body_bytes = 1024\n",
        config(&receiver.url)
    ))
    .await;
    // A chunked body declares no length: the limit must hold while reading.
    let addr = gw.ingress.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut head =
        format!("POST /in/orders HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in signed(INBOUND_SECRET, "msg_stream", now_secs(), b"") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await.expect("head");
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    for _ in 0..4 {
        // The server may answer and close before we finish: that is the point.
        if sock.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    // Read the response head only: the connection may be kept open after it.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    gw.stop().await;
    assert!(
        open_store(dir.path())
            .event_ids()
            .await
            .expect("ids")
            .is_empty()
    );
}

#[tokio::test]
async fn endpoints_receive_only_their_sources_and_types() {
    let all = Receiver::start().await;
    let invoices = Receiver::start().await;
    let github = Receiver::start().await;
    let config = format!(
        r#"
        [delivery]
        allow_private_networks = true
        [[sources]]
        id = "billing"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        [[sources]]
        id = "code"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        [[endpoints]]
        id = "all"
        url = "{}"
        [[endpoints]]
        id = "invoices"
        url = "{}"
        sources = ["billing"]
        event_types = ["invoice.*"]
        [[endpoints]]
        id = "code"
        url = "{}"
        sources = ["code"]
        event_types = ["push", "pull_request.*"]
        "#,
        all.url, invoices.url, github.url
    );
    let (gw, dir) = Gateway::start(&config).await;
    let sends = [
        ("billing", "invoice.paid", true, false),
        ("billing", "customer.created", false, false),
        ("code", "invoice.paid", false, false),
        ("code", "push", false, true),
        ("code", "pull_request.opened", false, true),
        ("code", "issue.opened", false, false),
    ];
    let mut ids = Vec::new();
    for (i, (source, ty, _, _)) in sends.iter().enumerate() {
        let body = format!(r#"{{"type":"{ty}"}}"#);
        let (status, answer) = send(&gw.url(source), &format!("msg_{i}"), &body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["event_id"].as_str().expect("id").to_string());
    }
    let want_invoices: Vec<&String> = ids
        .iter()
        .zip(&sends)
        .filter(|(_, s)| s.2)
        .map(|(id, _)| id)
        .collect();
    let want_code: Vec<&String> = ids
        .iter()
        .zip(&sends)
        .filter(|(_, s)| s.3)
        .map(|(id, _)| id)
        .collect();
    all.wait_for(sends.len()).await;
    invoices.wait_for(want_invoices.len()).await;
    github.wait_for(want_code.len()).await;
    gw.stop().await;

    let got_ids = |r: &Receiver| -> Vec<String> {
        let mut v: Vec<String> = r
            .got()
            .iter()
            .map(|x| x.header("webhook-id").to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |v: Vec<&String>| -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().cloned().collect();
        v.sort();
        v
    };
    assert_eq!(got_ids(&invoices), sorted(want_invoices.clone()));
    assert_eq!(got_ids(&github), sorted(want_code.clone()));
    // On disk, each event has exactly the deliveries its subscriptions call for.
    let store = open_store(dir.path());
    for (id, (_, _, inv, code)) in ids.iter().zip(&sends) {
        let (event, _) = store
            .event(id.parse().expect("id"))
            .await
            .expect("read")
            .expect("stored");
        let mut endpoints: Vec<&str> = event.deliveries.iter().map(|(_, e)| e.as_str()).collect();
        endpoints.sort();
        let mut want = vec!["all"];
        if *inv {
            want.push("invoices");
        }
        if *code {
            want.push("code");
        }
        want.sort();
        assert_eq!(endpoints, want, "event {id}");
    }
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let (gw, _dir) = Gateway::start("").await;
    let c = client();
    let health = c
        .get(format!("{}/healthz", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status().as_u16(), 200);
    let ready = c
        .get(format!("{}/readyz", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status().as_u16(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn over_the_backlog_limit_answers_503_with_retry_after_and_stores_nothing() {
    let stuck = Receiver::start().await;
    stuck.hang();
    let config = format!(
        "{}\n[store]\nmax_backlog = 2\n",
        config(&stuck.url).replace("secret = ", "max_in_flight = 1\nsecret = ")
    );
    let (gw, dir) = Gateway::start(&config).await;
    let body = r#"{"type":"order.created"}"#;
    for id in ["msg_1", "msg_2"] {
        let (status, _) = send(&gw.url("orders"), id, body).await;
        assert_eq!(status, 202);
    }
    let headers = signed(INBOUND_SECRET, "msg_3", now_secs(), body.as_bytes());
    let resp = post_raw(&client(), &gw.url("orders"), &headers, body)
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let answer: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(answer["error"]["code"], "backlog_full");
    gw.stop().await;
    assert_eq!(
        open_store(dir.path()).event_ids().await.expect("ids").len(),
        2,
        "the refused event was not stored"
    );
}

#[tokio::test]
async fn provider_defaults_route_github_by_its_event_header() {
    let pushes = Receiver::start().await;
    let config = format!(
        r#"
        [delivery]
        allow_private_networks = true
        [[sources]]
        id = "gh"
        verify = "github"
        secrets = ["gh-secret"]
        [[endpoints]]
        id = "pushes"
        url = "{}"
        event_types = ["push"]
        "#,
        pushes.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let github = hookgate::verify::github::Github::new(vec![]);
    let mut ids = Vec::new();
    for (delivery, event) in [("d-ping", "ping"), ("d-push", "push")] {
        let body = format!(r#"{{"zen":"x","event":"{event}"}}"#);
        let headers = vec![
            (
                "x-hub-signature-256".to_string(),
                github.sign(b"gh-secret", body.as_bytes()),
            ),
            ("x-github-event".to_string(), event.to_string()),
            ("x-github-delivery".to_string(), delivery.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        let (status, answer) = post(&gw.url("gh"), &headers, body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(event_id(&answer));
    }
    let got = pushes.wait_for(1).await;
    assert_eq!(got[0].header("hookgate-event-type"), "push");
    assert_eq!(got[0].header("webhook-id"), ids[1].to_string());
    // The ping matched no endpoint: stored, with no delivery.
    let (ping, _) = gw.store.event(ids[0]).await.expect("read").expect("stored");
    assert_eq!(
        (ping.event_type.as_deref(), ping.deliveries.len()),
        (Some("ping"), 0)
    );
    assert_eq!(ping.dedup_key.as_deref(), Some("d-ping"));
    gw.stop().await;
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_with_retry_after_and_nothing_is_stored() {
    let receiver = Receiver::start().await;
    let config = format!(
        "[delivery]\nallow_private_networks = true\n[[sources]]\nid = \"orders\"\nverify = \"standard-webhooks\"\nsecrets = [\"{INBOUND_SECRET}\"]\nrate_limit = {{ per_second = 1, burst = 2 }}\n\
         [[endpoints]]\nid = \"r\"\nurl = \"{}\"\n",
        receiver.url
    );
    let (gw, dir) = Gateway::start(&config).await;
    for id in ["msg_rl1", "msg_rl2"] {
        let (status, _) = send(&gw.url("orders"), id, r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
    }
    let headers = signed(INBOUND_SECRET, "msg_rl3", now_secs(), br#"{"type":"a"}"#);
    let resp = post_raw(&client(), &gw.url("orders"), &headers, r#"{"type":"a"}"#)
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let body: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    gw.stop().await;
    assert_eq!(
        open_store(dir.path()).event_ids().await.expect("ids").len(),
        2
    );
}
