//! Providers' endpoint-verification handshakes, on the real binary over loopback: each one
//! answered exactly as its provider requires; a bad signature, token or `verify_token`
//! refused with nothing echoed; no handshake stored or delivered; a real event right after it
//! stored and delivered; a source's configured synchronous answer; handshakes counted under
//! their own outcome. One binary with one source per scheme serves every scenario, to keep the
//! suite fast.
//!
//! Signatures are computed here with `hmac`/`sha2`/`ring`, not with hookgate's own signing
//! code, so a mistake shared by the signer and the verifier cannot hide.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use sha2::Sha256;

use crate::harness::*;

const API_TOKEN: &str = "handshake-admin-token";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// Zoom's published example: this secret token and plain token give `ZOOM_ENCRYPTED`.
const ZOOM_SECRET: &str = "secretValueTest";
const ZOOM_PLAIN: &str = "qgg8vlvZRS6UYooatFL8Aw";
const ZOOM_ENCRYPTED: &str = "70c1f2e2e6ca2d39297490d1f9142c7d701415ea8e6151f6562a08fa657a40ff";
const META_SECRET: &str = "meta-app-secret";
const META_VERIFY_TOKEN: &str = "meta-verify-token-1";
/// X's published CRC example: this consumer secret, `X_CRC_TOKEN` and `X_RESPONSE_TOKEN`.
const X_SECRET: &str = "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu";
const X_CRC_TOKEN: &str = "9b4507b3-9040-4669-9ca3-6b94edb50553";
const X_RESPONSE_TOKEN: &str = "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=";
const DROPBOX_SECRET: &str = "dropbox-app-secret";
const TWITCH_SECRET: &str = "twitch-subscription-secret";
const GRAPH_CLIENT_STATE: &str = "graph-client-state";
const OKTA_SECRET: &str = "okta-shared-secret";
/// RFC 8032's first Ed25519 test vector: the seed signs, the public key is the source's secret.
const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const DISCORD_PUBLIC_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SMS_TOKEN: &str = "sms-hook-token";

fn config(receiver: &str) -> String {
    format!(
        r#"
[delivery]
allowed_networks = ["127.0.0.0/8"]

[[sources]]
id = "slack"
verify = "slack"
secrets = ["{SLACK_SECRET}"]

[[sources]]
id = "zoom"
verify = "zoom"
secrets = ["{ZOOM_SECRET}"]

[[sources]]
id = "meta"
verify = "meta"
secrets = ["{META_SECRET}"]
verify_token = "{META_VERIFY_TOKEN}"

# The alias, as X's older documentation names it.
[[sources]]
id = "x"
verify = "twitter"
secrets = ["{X_SECRET}"]

[[sources]]
id = "dropbox"
verify = "dropbox"
secrets = ["{DROPBOX_SECRET}"]

[[sources]]
id = "twitch"
verify = "twitch"
secrets = ["{TWITCH_SECRET}"]

[[sources]]
id = "graph"
verify = "microsoft-graph"
secrets = ["{GRAPH_CLIENT_STATE}"]

[[sources]]
id = "okta"
verify = "okta"
secrets = ["{OKTA_SECRET}"]

[[sources]]
id = "discord"
verify = "discord"
secrets = ["{DISCORD_PUBLIC_KEY}"]

[[sources]]
id = "orders"
verify = "standard-webhooks"
secrets = ["{INBOUND_SECRET}"]

[[sources]]
id = "sms"
verify = "token"
token_header = "x-hook-token"
secrets = ["{SMS_TOKEN}"]
response = {{ status = 200, content_type = "text/xml", body = "<Response/>" }}

[[endpoints]]
id = "receiver"
url = "{receiver}"
"#
    )
}

/// What the gateway answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    nosniff: bool,
    body: String,
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request sent");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header").to_string())
    };
    let content_type = header("content-type");
    let nosniff = header("x-content-type-options").as_deref() == Some("nosniff");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    Answer {
        status,
        content_type,
        nosniff,
        body,
    }
}

async fn get_from(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req).await
}

async fn post_to(url: &str, headers: &[(String, String)], body: &str) -> Answer {
    let mut req = client().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    answer(req).await
}

impl Answer {
    /// 200, `content_type`, `nosniff`, and exactly `body`.
    fn assert_echo(&self, what: &str, content_type: &str, body: &str) {
        assert_eq!(self.status, 200, "{what}: {self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some(content_type),
            "{what}: {self:?}"
        );
        assert!(self.nosniff, "{what}: echoed without nosniff: {self:?}");
        assert_eq!(self.body, body, "{what}");
    }

    /// 200 `application/json` with `nosniff`, exactly the JSON `want` (no other keys).
    fn assert_json(&self, what: &str, want: &serde_json::Value) {
        assert_eq!(self.status, 200, "{what}: {self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "{what}: {self:?}"
        );
        assert!(self.nosniff, "{what}: echoed without nosniff: {self:?}");
        let got: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("{what}: {self:?}"));
        assert_eq!(&got, want, "{what}");
    }

    /// `status` with no content type and an empty body.
    fn assert_empty(&self, what: &str, status: u16) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert_eq!(self.content_type, None, "{what}: {self:?}");
        assert_eq!(self.body, "", "{what}");
    }

    /// Refused with `status` and error `code`, and `secret` (the challenge) nowhere in it.
    fn assert_refused(&self, what: &str, status: u16, code: &str, secret: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        let body: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("{what}: {self:?}"));
        assert_eq!(body["error"]["code"], code, "{what}: {self:?}");
        assert!(
            !self.body.contains(secret),
            "{what}: the refusal echoes {secret:?}: {self:?}"
        );
    }

    /// 405, as for any GET on a scheme without GET handshakes.
    fn assert_not_allowed(&self, what: &str) {
        assert_eq!(self.status, 405, "{what}: {self:?}");
        let body: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("{what}: {self:?}"));
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{what}: {self:?}"
        );
    }

    /// Accepted: 202 with the event's id.
    fn accepted(&self, what: &str) -> String {
        assert_eq!(self.status, 202, "{what}: {self:?}");
        let body: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("{what}: {self:?}"));
        body["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no event_id in {self:?}"))
            .to_string()
    }
}

fn hmac_sha256(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn headers(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".to_string())
}

/// Slack's headers for `body`, signed with `secret`.
fn slack_signed(secret: &str, body: &str) -> Vec<(String, String)> {
    let ts = now_secs().to_string();
    let mac = hmac_sha256(secret, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]);
    headers(&[
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", format!("v0={}", hex::encode(mac))),
        json_type(),
    ])
}

/// Zoom's headers for `body`, signed with `secret`.
fn zoom_signed(secret: &str, body: &str) -> Vec<(String, String)> {
    let ts = now_secs().to_string();
    let mac = hmac_sha256(secret, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]);
    headers(&[
        ("x-zm-request-timestamp", ts),
        ("x-zm-signature", format!("v0={}", hex::encode(mac))),
        json_type(),
    ])
}

/// Twitch EventSub's headers for a message of `kind`, signed with `secret`, sent now.
fn twitch_signed(secret: &str, id: &str, kind: &str, body: &str) -> Vec<(String, String)> {
    let ts = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let mac = hmac_sha256(secret, &[id.as_bytes(), ts.as_bytes(), body.as_bytes()]);
    headers(&[
        ("twitch-eventsub-message-id", id.to_string()),
        ("twitch-eventsub-message-timestamp", ts),
        (
            "twitch-eventsub-message-signature",
            format!("sha256={}", hex::encode(mac)),
        ),
        ("twitch-eventsub-message-type", kind.to_string()),
        ("twitch-eventsub-message-retry", "0".to_string()),
        ("twitch-eventsub-subscription-type", "channel.follow".into()),
        ("twitch-eventsub-subscription-version", "2".to_string()),
        json_type(),
    ])
}

/// Discord's headers for `body`: Ed25519 over timestamp ‖ body with the test seed.
fn discord_signed(body: &str) -> Vec<(String, String)> {
    let seed = hex::decode(DISCORD_SEED).expect("hex");
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    assert_eq!(
        hex::encode(pair.public_key().as_ref()),
        DISCORD_PUBLIC_KEY,
        "the source's public key is the seed's"
    );
    let ts = now_secs().to_string();
    let signed = [ts.as_bytes(), body.as_bytes()].concat();
    headers(&[
        ("x-signature-ed25519", hex::encode(pair.sign(&signed))),
        ("x-signature-timestamp", ts),
        json_type(),
    ])
}

/// The same headers with the value of `name` changed in its last character.
fn tampered(mut h: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    let (_, v) = h
        .iter_mut()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let last = v.pop().expect("a value");
    v.push(if last == '0' { '1' } else { '0' });
    h
}

/// The real events sent, by the marker in their body: (source, expected event type).
type Real = BTreeMap<&'static str, (&'static str, Option<&'static str>)>;

/// Every handshake of every scheme against one binary, then what it stored, delivered and
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_handshakes_on_the_real_binary() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = binary_config(
        dir.path(),
        &format!("token = \"{API_TOKEN}\""),
        &config(&receiver.url),
    );
    let gw = Binary::start(&config_path).await;
    let mut real = Real::new();
    slack(&gw, &mut real).await;
    zoom(&gw, &mut real).await;
    meta(&gw, &mut real).await;
    x(&gw, &mut real).await;
    dropbox(&gw, &mut real).await;
    twitch(&gw, &mut real).await;
    microsoft_graph(&gw, &mut real).await;
    okta(&gw, &mut real).await;
    discord(&gw, &mut real).await;
    get_from(&gw.url("orders"), &[])
        .await
        .assert_not_allowed("GET on standard-webhooks");
    configured_answer(&gw, &mut real).await;

    nothing_but_real_events_stored(&gw, &real).await;
    nothing_but_real_events_delivered(&receiver, &real).await;
    handshakes_counted(&gw).await;
    gw.kill_9().await;
}

/// Slack: url_verification, signed, answered with its challenge; unsigned or badly signed,
/// refused without it; ssl_check answered empty before any signature.
async fn slack(gw: &Binary, real: &mut Real) {
    let url = gw.url("slack");
    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    let body = json!({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": challenge,
        "type": "url_verification",
    })
    .to_string();
    post_to(&url, &slack_signed(SLACK_SECRET, &body), &body)
        .await
        .assert_json("slack url_verification", &json!({ "challenge": challenge }));
    post_to(&url, &headers(&[json_type()]), &body)
        .await
        .assert_refused(
            "slack url_verification without a signature",
            401,
            "missing_signature",
            challenge,
        );
    post_to(&url, &slack_signed("not-the-signing-secret", &body), &body)
        .await
        .assert_refused(
            "slack url_verification with a bad signature",
            401,
            "bad_signature",
            challenge,
        );
    let form = "application/x-www-form-urlencoded".to_string();
    post_to(
        &url,
        &headers(&[("content-type", form)]),
        "ssl_check=1&token=x",
    )
    .await
    .assert_empty("slack ssl_check", 200);
    get_from(&url, &[])
        .await
        .assert_not_allowed("GET on slack, which has no GET handshake");
    // Signed, but with no challenge string to answer with: refused, not stored as an event.
    for body in [
        r#"{"type":"url_verification"}"#,
        r#"{"type":"url_verification","challenge":12345}"#,
    ] {
        let got = post_to(&url, &slack_signed(SLACK_SECRET, body), body).await;
        assert_eq!(
            got.status, 400,
            "a malformed url_verification: {body}: {got:?}"
        );
    }

    let body = json!({
        "type": "event_callback",
        "event_id": "Ev-real-slack",
        "event": { "type": "app_mention", "text": "real-slack" },
    })
    .to_string();
    post_to(&url, &slack_signed(SLACK_SECRET, &body), &body)
        .await
        .accepted("slack event after its handshake");
    real.insert("real-slack", ("slack", Some("app_mention")));
}

/// Zoom: endpoint.url_validation answered with the plain token and its HMAC, on Zoom's
/// published example; refused without a good signature.
async fn zoom(gw: &Binary, real: &mut Real) {
    let url = gw.url("zoom");
    assert_eq!(
        hex::encode(hmac_sha256(ZOOM_SECRET, &[ZOOM_PLAIN.as_bytes()])),
        ZOOM_ENCRYPTED,
        "Zoom's published example"
    );
    let body = json!({
        "payload": { "plainToken": ZOOM_PLAIN },
        "event_ts": 1_654_503_849_680_u64,
        "event": "endpoint.url_validation",
    })
    .to_string();
    post_to(&url, &zoom_signed(ZOOM_SECRET, &body), &body)
        .await
        .assert_json(
            "zoom url_validation",
            &json!({ "plainToken": ZOOM_PLAIN, "encryptedToken": ZOOM_ENCRYPTED }),
        );
    post_to(&url, &zoom_signed("not-the-secret-token", &body), &body)
        .await
        .assert_refused(
            "zoom url_validation with a bad signature",
            401,
            "bad_signature",
            ZOOM_PLAIN,
        );
    post_to(&url, &headers(&[json_type()]), &body)
        .await
        .assert_refused(
            "zoom url_validation without a signature",
            401,
            "missing_signature",
            ZOOM_PLAIN,
        );

    let body = json!({
        "event": "meeting.started",
        "event_ts": 1_654_503_849_681_u64,
        "payload": { "object": { "id": "real-zoom" } },
    })
    .to_string();
    post_to(&url, &zoom_signed(ZOOM_SECRET, &body), &body)
        .await
        .accepted("zoom event after its handshake");
    real.insert("real-zoom", ("zoom", Some("meeting.started")));
}

/// Meta: the subscription check echoes its challenge only for the right verify_token.
async fn meta(gw: &Binary, real: &mut Real) {
    let url = gw.url("meta");
    let check = |token: &str| {
        format!("{url}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444")
    };
    get_from(&check(META_VERIFY_TOKEN), &[]).await.assert_echo(
        "meta subscription check",
        "text/plain; charset=utf-8",
        "1158201444",
    );
    get_from(&check("not-the-verify-token"), &[])
        .await
        .assert_refused(
            "meta subscription check with a wrong verify_token",
            403,
            "handshake_refused",
            "1158201444",
        );

    let body = json!({
        "object": "page",
        "entry": [{ "id": "real-meta", "time": 1_520_383_571 }],
    })
    .to_string();
    let sig = hex::encode(hmac_sha256(META_SECRET, &[body.as_bytes()]));
    let signed = headers(&[
        ("x-hub-signature-256", format!("sha256={sig}")),
        json_type(),
    ]);
    post_to(&url, &signed, &body)
        .await
        .accepted("meta event after its handshake");
    real.insert("real-meta", ("meta", Some("page")));
}

/// X: the CRC check, on X's published example.
async fn x(gw: &Binary, real: &mut Real) {
    let url = gw.url("x");
    let b64 = |tag: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(tag);
    assert_eq!(
        format!(
            "sha256={}",
            b64(hmac_sha256(X_SECRET, &[X_CRC_TOKEN.as_bytes()]))
        ),
        X_RESPONSE_TOKEN,
        "X's published example"
    );
    get_from(&format!("{url}?crc_token={X_CRC_TOKEN}"), &[])
        .await
        .assert_json("x crc", &json!({ "response_token": X_RESPONSE_TOKEN }));

    let body = json!({
        "for_user_id": "2244994945",
        "tweet_create_events": [{ "id_str": "real-x" }],
    })
    .to_string();
    let sig = b64(hmac_sha256(X_SECRET, &[body.as_bytes()]));
    let signed = headers(&[
        ("x-twitter-webhooks-signature", format!("sha256={sig}")),
        json_type(),
    ]);
    post_to(&url, &signed, &body)
        .await
        .accepted("x event after its handshake");
    real.insert("real-x", ("x", Some("tweet_create_events")));
}

/// Dropbox: the challenge echoed as plain text, never sniffed.
async fn dropbox(gw: &Binary, real: &mut Real) {
    let url = gw.url("dropbox");
    get_from(&format!("{url}?challenge=abc123"), &[])
        .await
        .assert_echo("dropbox challenge", "text/plain; charset=utf-8", "abc123");

    let body = json!({
        "list_folder": { "accounts": ["dbid:real-dropbox"] },
        "delta": { "users": [12345] },
    })
    .to_string();
    let sig = hex::encode(hmac_sha256(DROPBOX_SECRET, &[body.as_bytes()]));
    post_to(
        &url,
        &headers(&[("x-dropbox-signature", sig), json_type()]),
        &body,
    )
    .await
    .accepted("dropbox event after its handshake");
    real.insert("real-dropbox", ("dropbox", None));
}

/// Twitch: webhook_callback_verification answered with its challenge as plain text, refused
/// with a bad signature; a revocation is an event of type `revocation`.
async fn twitch(gw: &Binary, real: &mut Real) {
    let url = gw.url("twitch");
    let challenge = "pogchamp-kappa-360noscope-vohiyo";
    let body = json!({
        "challenge": challenge,
        "subscription": {
            "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
            "status": "webhook_callback_verification_pending",
            "type": "channel.follow",
            "version": "2",
        },
    })
    .to_string();
    let verification = twitch_signed(
        TWITCH_SECRET,
        "e76c6bd4-55c9-4987-8304-da1588d8988b",
        "webhook_callback_verification",
        &body,
    );
    post_to(&url, &verification, &body).await.assert_echo(
        "twitch webhook_callback_verification",
        "text/plain; charset=utf-8",
        challenge,
    );
    let forged = tampered(verification, "twitch-eventsub-message-signature");
    post_to(&url, &forged, &body).await.assert_refused(
        "twitch webhook_callback_verification with a bad signature",
        401,
        "bad_signature",
        challenge,
    );

    let body = json!({
        "subscription": {
            "id": "real-twitch",
            "status": "authorization_revoked",
            "type": "channel.follow",
            "version": "2",
        },
    })
    .to_string();
    let id = "84c1e79a-2a4b-4c13-ba0b-4312293e9308";
    post_to(
        &url,
        &twitch_signed(TWITCH_SECRET, id, "revocation", &body),
        &body,
    )
    .await
    .accepted("twitch revocation after its handshake");
    real.insert("real-twitch", ("twitch", Some("revocation")));
}

/// Microsoft Graph: the validation token, decoded, as plain text; notifications only with the
/// right clientState.
async fn microsoft_graph(gw: &Binary, real: &mut Real) {
    let url = gw.url("graph");
    let text = "text/plain; charset=utf-8";
    post_to(
        &format!("{url}?validationToken=Validation%3A+Testing+client"),
        &headers(&[("content-type", text.to_string())]),
        "",
    )
    .await
    .assert_echo("graph validation", text, "Validation: Testing client");

    let notification = |state: &str, marker: &str| {
        json!({
            "value": [{
                "id": marker,
                "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                "clientState": state,
                "changeType": "created",
                "resource": "Users/real/Messages/1",
                "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            }],
        })
        .to_string()
    };
    let body = notification(GRAPH_CLIENT_STATE, "real-graph");
    post_to(&url, &headers(&[json_type()]), &body)
        .await
        .accepted("graph notification after its handshake");
    real.insert("real-graph", ("graph", Some("created")));
    let body = notification("not-the-client-state", "forged-graph");
    post_to(&url, &headers(&[json_type()]), &body)
        .await
        .assert_refused(
            "graph notification with a wrong clientState",
            401,
            "bad_signature",
            "forged-graph",
        );
}

/// Okta: the one-time verification, only after the token check.
async fn okta(gw: &Binary, real: &mut Real) {
    let url = gw.url("okta");
    let challenge = "x-okta-verification-challenge";
    get_from(&url, &[("authorization", OKTA_SECRET), (challenge, "abc")])
        .await
        .assert_json("okta verification", &json!({ "verification": "abc" }));
    // A value that no error message could contain by chance.
    let value = "okta-challenge-4cbd8e21";
    get_from(
        &url,
        &[("authorization", "not-the-okta-secret"), (challenge, value)],
    )
    .await
    .assert_refused(
        "okta verification with a wrong token",
        401,
        "bad_signature",
        value,
    );
    get_from(&url, &[(challenge, value)]).await.assert_refused(
        "okta verification without a token",
        401,
        "missing_signature",
        value,
    );

    let body = json!({
        "eventType": "com.okta.event_hook",
        "eventId": "real-okta",
        "data": { "events": [{ "eventType": "user.session.start" }] },
    })
    .to_string();
    let authorized = headers(&[("authorization", OKTA_SECRET.to_string()), json_type()]);
    post_to(&url, &authorized, &body)
        .await
        .accepted("okta event after its handshake");
    real.insert("real-okta", ("okta", Some("user.session.start")));
}

/// Discord: the interaction PING answered in kind, the Webhook Events PING with 204, and a
/// bad or missing signature refused.
async fn discord(gw: &Binary, real: &mut Real) {
    let url = gw.url("discord");
    let ping = r#"{"type":1}"#;
    post_to(&url, &discord_signed(ping), ping)
        .await
        .assert_json("discord interaction PING", &json!({ "type": 1 }));
    let webhook_ping = r#"{"version":1,"application_id":"1","type":0}"#;
    post_to(&url, &discord_signed(webhook_ping), webhook_ping)
        .await
        .assert_empty("discord Webhook Events PING", 204);
    let forged = tampered(discord_signed(ping), "x-signature-ed25519");
    post_to(&url, &forged, ping).await.assert_refused(
        "discord PING with a bad signature",
        401,
        "bad_signature",
        "\"type\":1",
    );
    post_to(&url, &headers(&[json_type()]), ping)
        .await
        .assert_refused(
            "discord PING without a signature",
            401,
            "missing_signature",
            "\"type\":1",
        );

    let body = json!({
        "version": 1,
        "application_id": "1",
        "type": 1,
        "event": {
            "type": "APPLICATION_AUTHORIZED",
            "timestamp": "2024-10-18T14:42:53.064834",
            "data": { "marker": "real-discord" },
        },
    })
    .to_string();
    post_to(&url, &discord_signed(&body), &body)
        .await
        .accepted("discord event after its handshakes");
    real.insert("real-discord", ("discord", Some("APPLICATION_AUTHORIZED")));
}

/// A source's configured answer replaces the 202, for the event and for its duplicate.
async fn configured_answer(gw: &Binary, real: &mut Real) {
    let url = gw.url("sms");
    let sms = headers(&[
        ("x-hook-token", SMS_TOKEN.to_string()),
        ("webhook-id", "sms-1".to_string()),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
    ]);
    let body = "From=%2B15005550006&Body=real-sms";
    for what in ["an accepted sms", "its duplicate"] {
        let got = post_to(&url, &sms, body).await;
        assert_eq!(got.status, 200, "{what}: {got:?}");
        assert_eq!(
            got.content_type.as_deref(),
            Some("text/xml"),
            "{what}: {got:?}"
        );
        assert_eq!(got.body, "<Response/>", "{what}");
    }
    real.insert("real-sms", ("sms", None));
}

/// Through the admin API: each source holds exactly its real events, with their types.
async fn nothing_but_real_events_stored(gw: &Binary, real: &Real) {
    for source in [
        "slack", "zoom", "meta", "x", "dropbox", "twitch", "graph", "okta", "discord", "orders",
        "sms",
    ] {
        let resp = client()
            .get(format!(
                "{}/api/v1/events?source={source}&limit=500",
                gw.admin
            ))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
        let page: serde_json::Value =
            serde_json::from_str(&resp.text().await.expect("body")).expect("json");
        let mut stored: Vec<Option<&str>> = page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|e| e["type"].as_str())
            .collect();
        let mut want: Vec<Option<&str>> = real
            .values()
            .filter(|(s, _)| *s == source)
            .map(|(_, t)| *t)
            .collect();
        stored.sort_unstable();
        want.sort_unstable();
        assert_eq!(
            stored, want,
            "the events stored for {source} are its real events only"
        );
    }
}

/// The receiver gets each real event once, with its source and type, and nothing else.
async fn nothing_but_real_events_delivered(receiver: &Receiver, real: &Real) {
    let got = receiver.wait_for(real.len()).await;
    let mut delivered: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &got {
        let body = String::from_utf8_lossy(&r.body);
        let marker = real
            .keys()
            .find(|m| body.contains(**m))
            .unwrap_or_else(|| panic!("the receiver got something not sent as an event: {body}"));
        *delivered.entry(marker).or_default() += 1;
        let (source, event_type) = real[marker];
        assert_eq!(r.header("hookgate-source"), source, "{marker}");
        assert_eq!(
            r.header("hookgate-event-type"),
            event_type.unwrap_or(""),
            "{marker}"
        );
    }
    assert!(
        delivered.len() == real.len() && delivered.values().all(|n| *n == 1),
        "each real event delivered once: {delivered:?}"
    );
}

/// Each handshake counted under its own outcome in `hookgate_events_received`.
async fn handshakes_counted(gw: &Binary) {
    let metrics = metrics_text(&gw.admin).await;
    for (source, outcome) in [
        ("slack", "handshake_url_verification"),
        ("slack", "handshake_ssl_check"),
        ("zoom", "handshake_url_validation"),
        ("meta", "handshake_subscribe"),
        ("meta", "handshake_refused"),
        ("x", "handshake_crc"),
        ("dropbox", "handshake_challenge"),
        ("twitch", "handshake_callback_verification"),
        ("graph", "handshake_validation"),
        ("okta", "handshake_verification"),
        ("discord", "handshake_interaction_ping"),
        ("discord", "handshake_webhook_ping"),
        ("sms", "accepted"),
        ("sms", "duplicate"),
    ] {
        let line = format!(
            "hookgate_events_received_total{{source=\"{source}\",outcome=\"{outcome}\"}} 1"
        );
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}
