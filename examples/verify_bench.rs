//! Verification cost per scheme for a 1 KiB body, with a bare HMAC-SHA256 of the same bytes as
//! the floor measured in the same run.
//!
//!     cargo run --release --example verify_bench
//!
//! Each row verifies a valid request (the accepting path does the most work: every MAC is
//! computed and compared).

use std::hint::black_box;
use std::time::Instant;

use hookgate::config::Config;
use hookgate::verify::{
    HmacAlgorithm, Inbound, github, linear, paddle, shopify, slack, standard_webhooks, stripe,
    twilio,
};
use http::HeaderMap;

const NOW: i64 = 1_700_000_000;

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    h
}

fn time_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn main() {
    let sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let config = format!(
        r#"
        [[sources]]
        id = "standard-webhooks"
        verify = "standard-webhooks"
        secrets = ["{sw_secret}"]
        [[sources]]
        id = "stripe"
        verify = "stripe"
        secrets = ["whsec_test_secret"]
        [[sources]]
        id = "github"
        verify = "github"
        secrets = ["gh"]
        [[sources]]
        id = "shopify"
        verify = "shopify"
        secrets = ["shop"]
        [[sources]]
        id = "slack"
        verify = "slack"
        secrets = ["slack"]
        [[sources]]
        id = "twilio"
        verify = "twilio"
        secrets = ["tok"]
        public_url = "https://hooks.example.com/in/twilio"
        [[sources]]
        id = "paddle"
        verify = "paddle"
        secrets = ["pdl"]
        [[sources]]
        id = "linear"
        verify = "linear"
        secrets = ["lin"]
        "#
    );
    let sources = Config::from_toml(&config)
        .and_then(Config::validate)
        .expect("config")
        .sources;
    let pad = "x".repeat(1024 - 60);
    let json = format!(
        r#"{{"type":"bench","webhookTimestamp":{}000,"pad":"{pad}"}}"#,
        NOW
    );
    let body = json.as_bytes();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs((0..16).map(|i| (format!("Param{i}"), "v".repeat(50))))
        .finish();

    let sw_key = standard_webhooks::decode_secret(sw_secret).expect("key");
    let twilio_params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let twilio_refs: Vec<(&str, &str)> = twilio_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cases: Vec<(&str, HeaderMap, &[u8])> = vec![
        (
            "standard-webhooks",
            headers(&[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", NOW.to_string()),
                (
                    "webhook-signature",
                    standard_webhooks::sign(&sw_key, "msg_1", NOW, body),
                ),
            ]),
            body,
        ),
        (
            "stripe",
            headers(&[(
                "stripe-signature",
                stripe::sign("whsec_test_secret", NOW, body),
            )]),
            body,
        ),
        (
            "github",
            headers(&[(
                "x-hub-signature-256",
                github::Github::new(vec![]).sign(b"gh", body),
            )]),
            body,
        ),
        (
            "shopify",
            headers(&[(
                "x-shopify-hmac-sha256",
                shopify::verifier(vec![]).sign(b"shop", 0, body),
            )]),
            body,
        ),
        (
            "slack",
            headers(&[
                ("x-slack-request-timestamp", NOW.to_string()),
                (
                    "x-slack-signature",
                    slack::verifier(vec![], 0).sign(b"slack", NOW, body),
                ),
            ]),
            body,
        ),
        (
            "twilio",
            headers(&[
                (
                    "x-twilio-signature",
                    twilio::Twilio::sign(
                        b"tok",
                        "https://hooks.example.com/in/twilio",
                        &twilio_refs,
                    ),
                ),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ]),
            form.as_bytes(),
        ),
        (
            "paddle",
            headers(&[("paddle-signature", paddle::sign("pdl", NOW, body))]),
            body,
        ),
        (
            "linear",
            headers(&[(
                "linear-signature",
                linear::Linear::new(vec![], 0).sign(b"lin", body),
            )]),
            body,
        ),
    ];

    let iters = 200_000;
    let floor = time_per_op(iters, || {
        black_box(hookgate::verify::mac(
            HmacAlgorithm::Sha256,
            b"key",
            &[black_box(body)],
        ));
    });
    println!(
        "\n1 KiB bodies ({} B form body for twilio), {iters} iterations each\n",
        form.len()
    );
    println!("| scheme | ns per verification | × one HMAC-SHA256 |");
    println!("|---|---|---|");
    println!("| floor: one HMAC-SHA256 of the body | {floor:.0} | 1.00 |");
    for (scheme, h, b) in &cases {
        let source = &sources[*scheme];
        let req = Inbound {
            headers: h,
            path_and_query: "/in/twilio",
            body: b,
            now_secs: NOW,
        };
        assert_eq!(
            source.verifier.verify(&req),
            Ok(()),
            "{scheme} must accept its own signature"
        );
        let ns = time_per_op(iters, || {
            let _ = black_box(source.verifier.verify(black_box(&req)));
        });
        println!("| {scheme} | {ns:.0} | {:.2} |", ns / floor);
    }
}
