//! The config's unit tests: parsing, key paths in errors, and every meaning check.

use super::*;
use crate::model::SyncResponse;

fn err(text: &str) -> ConfigError {
    match Config::from_toml(text).and_then(Config::validate) {
        Ok(_) => panic!("expected an error for {text}"),
        Err(e) => e,
    }
}

#[test]
fn empty_file_is_the_embedded_default() {
    let v = Config::from_toml("")
        .and_then(Config::validate)
        .expect("valid");
    assert_eq!(v.ingress_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(v.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(v.data_dir, PathBuf::from("./hookgate-data"));
    assert_eq!(v.max_body_bytes, 1024 * 1024);
}

#[test]
fn unknown_keys_are_named() {
    let e = err("[ingress]\nlisten = \"127.0.0.1:1\"\nmax_body = 3\n");
    assert_eq!(e.key, "ingress.max_body");
    assert!(e.problem.contains("unknown field"), "{e}");
    let e = err(
        "[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nrate_limit = { per_second = 1, brust = 2 }\n",
    );
    assert_eq!(e.key, "endpoints[0].rate_limit.brust");
    assert!(e.problem.contains("unknown field"), "{e}");
    let e = err("colour = 1\n");
    assert_eq!(e.key, "colour");
}

#[test]
fn wrong_types_and_bad_durations_are_named() {
    let e = err("[delivery]\ntimeout = \"5 parsecs\"\n");
    assert_eq!(e.key, "delivery.timeout");
    assert!(e.problem.contains("5 parsecs"), "{e}");
    let e = err("[ingress]\nmax_body_bytes = \"big\"\n");
    assert_eq!(e.key, "ingress.max_body_bytes");
    for key in [
        "header_timeout = \"0s\"",
        "body_timeout = \"0s\"",
        "max_connections = 0",
    ] {
        let e = err(&format!("[ingress]\n{key}\n"));
        let name = key.split(' ').next().unwrap_or_default();
        assert_eq!(e.key, format!("ingress.{name}"));
        assert_eq!(e.problem, "must be > 0");
    }
}

#[test]
fn meaning_errors_name_the_key() {
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nrate_limit = { per_second = 0 }\n");
    assert_eq!(
        e.to_string(),
        "endpoints[0].rate_limit.per_second: must be > 0"
    );
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"ftp://x\"\n");
    assert_eq!(e.key, "endpoints[0].url");
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nsources = [\"nope\"]\n");
    assert_eq!(e.key, "endpoints[0].sources[0]");
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nevent_types = [\"[\"]\n");
    assert_eq!(e.key, "endpoints[0].event_types[0]");
    let e = err(
        "[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nretry = { base = \"10s\", max_delay = \"1s\" }\n",
    );
    assert_eq!(e.key, "endpoints[0].retry.max_delay");
    let e = err("[[sources]]\nid = \"a b\"\nverify = \"none\"\n");
    assert_eq!(e.key, "sources[0].id");
    let e = err(
        "[[sources]]\nid = \"a\"\nverify = \"none\"\n[[sources]]\nid = \"a\"\nverify = \"none\"\n",
    );
    assert_eq!(e.key, "sources[1].id");
    let e = err("[[sources]]\nid = \"a\"\nverify = \"standard-webhooks\"\n");
    assert_eq!(e.key, "sources[0].secrets");
    let e = err("[admin]\nlisten = \"nowhere\"\n");
    assert_eq!(e.key, "admin.listen");
}

#[test]
fn handshake_scheme_keys_and_responses_are_checked() {
    let src = |body: &str| format!("[[sources]]\nid = \"s\"\n{body}\n");
    let ok = |body: &str| {
        Config::from_toml(&src(body))
            .and_then(Config::validate)
            .unwrap_or_else(|e| panic!("{body}: {e}"))
    };
    let e = err(&src(
        "verify = \"github\"\nsecrets = [\"x\"]\nverify_token = \"t\"",
    ));
    assert_eq!(
        e.to_string(),
        "sources[0].verify_token: is only used with verify = \"meta\""
    );
    ok("verify = \"meta\"\nsecrets = [\"x\"]\nverify_token = \"t\"");
    ok("verify = \"okta\"\nsecrets = [\"x\"]\ntoken_header = \"x-okta-auth\"");
    ok("verify = \"twitter\"\nsecrets = [\"x\"]");
    ok("verify = \"msgraph\"\nsecrets = [\"x\"]");
    let e = err(&src("verify = \"twitch\"\nsecrets = [\"short\"]"));
    assert_eq!(e.key, "sources[0].secrets");
    let e = err(&src("verify = \"discord\"\nsecrets = [\"not-hex\"]"));
    assert_eq!(e.key, "sources[0].secrets");
    assert!(e.problem.contains("public key"), "{e}");

    let with = |response: &str| src(&format!("verify = \"none\"\nresponse = {response}"));
    for (response, key) in [
        ("{ status = 302 }", "sources[0].response.status"),
        ("{ status = 500 }", "sources[0].response.status"),
        ("{ status = 204, body = \"x\" }", "sources[0].response.body"),
        (
            "{ status = 200, content_type = \"a\\nb\" }",
            "sources[0].response.content_type",
        ),
        ("{ status = 200, colour = 1 }", "sources[0].response.colour"),
    ] {
        assert_eq!(err(&with(response)).key, key, "{response}");
    }
    let long = format!(
        "{{ status = 200, body = \"{}\" }}",
        "x".repeat(MAX_RESPONSE_BODY + 1)
    );
    assert_eq!(err(&with(&long)).key, "sources[0].response.body");
    let v = ok(
        "verify = \"none\"\nresponse = { status = 200, body = \"<Response/>\", content_type = \"text/xml\" }",
    );
    assert_eq!(
        v.sources["s"].response,
        Some(SyncResponse {
            status: 200,
            content_type: Some("text/xml".into()),
            body: bytes::Bytes::from_static(b"<Response/>"),
        })
    );
    let v = ok("verify = \"none\"\nresponse = { status = 200, body = \"ok\" }");
    let r = v.sources["s"].response.as_ref().expect("response");
    assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let v = ok("verify = \"none\"\nresponse = { status = 204 }");
    let r = v.sources["s"].response.as_ref().expect("response");
    assert_eq!((r.status, r.content_type.as_deref()), (204, None));
}

#[test]
fn scheme_specific_keys_are_checked() {
    let src = |body: &str| format!("[[sources]]\nid = \"s\"\n{body}\n");
    let e = err(&src(
        "verify = \"github\"\nsecrets = [\"x\"]\npublic_url = \"https://a.example/in/s\"",
    ));
    assert_eq!(
        e.to_string(),
        "sources[0].public_url: is only used with verify = \"twilio\""
    );
    let e = err(&src(
        "verify = \"twilio\"\nsecrets = [\"x\"]\npublic_url = \"/in/s\"",
    ));
    assert_eq!(e.key, "sources[0].public_url");
    let e = err(&src(
        "verify = \"stripe\"\nsecrets = [\"x\"]\ntoken_header = \"x-token\"",
    ));
    assert_eq!(e.key, "sources[0].token_header");
    let e = err(&src("verify = \"basic\"\nsecrets = [\"no-colon\"]"));
    assert_eq!(e.key, "sources[0].secrets");
    let e = err(&src(
        "verify = \"standard-webhooks\"\nsecrets = [\"whsk_AAAA\"]",
    ));
    assert!(e.problem.contains("whpk_"), "{e}");
    let e = err(&src(
        "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"x-sig\", signed = \"{timestamp}.{body}\" }",
    ));
    assert_eq!(e.key, "sources[0].hmac.signed");
    let e = err(&src(
        "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"x-sig\", signed = \"nobody\" }",
    ));
    assert_eq!(e.key, "sources[0].hmac.signed");
    let e = err(&src(
        "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"bad header\" }",
    ));
    assert_eq!(e.key, "sources[0].hmac.header");
    let e = err(&src(
        "verify = \"token\"\nsecrets = [\"x\"]\ntoken_header = \"bad header\"",
    ));
    assert_eq!(e.key, "sources[0].token_header");
    let e = err(&src(
        "verify = \"stripe\"\nsecrets = [\"a\", \"b\", \"c\", \"d\", \"e\"]",
    ));
    assert_eq!(e.key, "sources[0].secrets");
}

#[test]
fn endpoint_headers_are_checked() {
    let ep =
        |body: &str| format!("[[endpoints]]\nid = \"a\"\nurl = \"https://a.example\"\n{body}\n");
    let e = err(&ep("headers = { \"webhook-id\" = \"x\" }"));
    assert_eq!(e.key, "endpoints[0].headers.webhook-id");
    let e = err(&ep("headers = { \"x-ok\" = \"bad\\nvalue\" }"));
    assert_eq!(e.key, "endpoints[0].headers.x-ok");
    let e = err(&ep("forward_headers = [\"x-fine\", \"Hookgate-Attempt\"]"));
    assert_eq!(e.key, "endpoints[0].forward_headers[1]");
    let e = err(&ep("forward_headers = [\"not a header\"]"));
    assert_eq!(e.key, "endpoints[0].forward_headers[0]");
    let v = Config::from_toml(&ep(
        "headers = { \"X-Api-Key\" = \"k\" }\nforward_headers = [\"X-Hub-Signature-256\"]",
    ))
    .and_then(Config::validate)
    .expect("valid");
    assert_eq!(v.endpoints[0].headers[0].0, "x-api-key");
    assert_eq!(
        v.endpoints[0].forward_headers.as_ref().map(Vec::len),
        Some(1)
    );
}

#[test]
fn rotated_out_secrets_sign_until_their_time() {
    let ep = |extra: &str| {
        format!(
            "[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n{extra}\n"
        )
    };
    let v = Config::from_toml(&ep(
        "previous_secrets = [{ secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", until = \"2026-11-25T00:00:00Z\" }]",
    ))
    .and_then(Config::validate)
    .expect("valid");
    let e = &v.endpoints[0];
    let until = 1_795_564_800_000;
    assert_eq!(e.keys_at(until - 1).len(), 2);
    assert_eq!(e.keys_at(until).len(), 1);
    assert_eq!(e.keys_at(until)[0], e.signing_key.as_ref().expect("key"));
    let e = err(&ep(
        "previous_secrets = [{ secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", until = \"soon\" }]",
    ));
    assert_eq!(e.key, "endpoints[0].previous_secrets[0].until");
    let e = err(&ep(
        "previous_secrets = [{ secret = \"nope!\", until = \"2026-11-25T00:00:00Z\" }]",
    ));
    assert_eq!(e.key, "endpoints[0].previous_secrets[0].secret");
}

#[test]
fn literal_internal_urls_are_refused_unless_allowed() {
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://169.254.169.254/latest\"\n");
    assert_eq!(e.key, "endpoints[0].url");
    assert!(
        e.problem
            .starts_with("blocked: private address 169.254.169.254"),
        "{e}"
    );
    let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://[::ffff:10.0.0.1]/\"\n");
    assert_eq!(e.key, "endpoints[0].url");
    let e = err("[delivery]\nallowed_networks = [\"10.0.0.0/8\", \"not-a-net\"]\n");
    assert_eq!(e.key, "delivery.allowed_networks[1]");
    let ok = Config::from_toml("[delivery]\nallowed_networks = [\"127.0.0.0/8\"]\n[[endpoints]]\nid = \"a\"\nurl = \"http://127.0.0.1:9/\"\n")
        .and_then(Config::validate);
    assert!(ok.is_ok(), "{ok:?}");
    let ok = Config::from_toml("[delivery]\nallow_private_networks = true\n[[endpoints]]\nid = \"a\"\nurl = \"http://127.0.0.1:9/\"\n")
        .and_then(Config::validate);
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn source_rate_limits_are_checked() {
    let e = err("[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 0 }\n");
    assert_eq!(
        e.to_string(),
        "sources[0].rate_limit.per_second: must be > 0"
    );
    let e = err(
        "[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 5, burst = 0 }\n",
    );
    assert_eq!(e.key, "sources[0].rate_limit.burst");
    let v = Config::from_toml(
        "[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 5 }\n",
    )
    .and_then(Config::validate)
    .expect("valid");
    assert!(v.sources["s"].limiter.is_some());
}

#[test]
fn every_scheme_builds_from_config() {
    for scheme in [
        "standard-webhooks",
        "stripe",
        "github",
        "shopify",
        "slack",
        "twilio",
        "paddle",
        "linear",
        "basic",
        "token",
    ] {
        let secret = if scheme == "basic" {
            "u:p"
        } else if scheme == "standard-webhooks" {
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        } else {
            "s"
        };
        let text =
            format!("[[sources]]\nid = \"s\"\nverify = \"{scheme}\"\nsecrets = [\"{secret}\"]\n");
        let v = Config::from_toml(&text).and_then(Config::validate);
        assert!(v.is_ok(), "{scheme}: {v:?}");
    }
}

#[test]
fn secrets_do_not_show_in_debug() {
    let c = Config::from_toml(
        "[[sources]]\nid = \"s\"\nverify = \"hmac\"\nsecrets = [\"topsecret\"]\nhmac = { header = \"x-sig\" }\n",
    )
    .expect("parses");
    let shown = format!("{c:?} {:?}", c.clone().validate().expect("valid"));
    assert!(!shown.contains("topsecret"), "{shown}");
    // Decoded keys neither: an endpoint's signing key (SW-2's) as text or as bytes.
    let c = Config::from_toml(
        "[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n",
    )
    .expect("parses");
    let v = c.clone().validate().expect("valid");
    let key = v.endpoints[0]
        .signing_key
        .as_ref()
        .expect("key")
        .expose()
        .to_vec();
    let shown = format!("{c:?} {v:?}");
    assert!(!shown.contains("C2FVsBQIhrscChlQIMV"), "{shown}");
    assert!(
        !shown.contains(format!("{:?}", &key[..4]).trim_matches(['[', ']'])),
        "{shown}"
    );
}

#[test]
fn spec_example_file_is_valid() {
    let text = include_str!("../../examples/hookgate.toml");
    let v = Config::from_toml(text)
        .and_then(Config::validate)
        .expect("example is valid");
    assert!(!v.sources.is_empty() && !v.endpoints.is_empty());
}

#[test]
fn the_store_backend_is_chosen_and_checked() {
    let v = Config::from_toml("")
        .and_then(Config::validate)
        .expect("valid");
    assert!(matches!(v.store, StoreBackend::Redb));
    let pg = "[store]\nbackend = \"postgres\"\nurl = \"postgres://hg:s3cret-pw@127.0.0.1:5432/hookgate\"\npool_size = 8\n";
    let v = Config::from_toml(pg)
        .and_then(Config::validate)
        .expect("valid");
    match &v.store {
        StoreBackend::Postgres { url, pool_size } => {
            assert_eq!(*pool_size, 8);
            assert!(url.expose().contains("s3cret-pw"));
        }
        other => panic!("expected postgres, got {other:?}"),
    }
    // The URL is a secret: never shown.
    assert!(!format!("{v:?}").contains("s3cret-pw"));
    let cases = [
        (
            "[store]\nbackend = \"postgres\"\n",
            "store.url",
            "is required",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"mysql://h/db\"\n",
            "store.url",
            "postgres://",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://u:s3cret-pw@127.0.0.1:notaport/db\"\n",
            "store.url",
            "is not a PostgreSQL URL",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://u@127.0.0.1/db\"\npool_size = 0\n",
            "store.pool_size",
            "must be 1 to",
        ),
        (
            "[store]\nurl = \"postgres://u@127.0.0.1/db\"\n",
            "store.url",
            "only used with store.backend",
        ),
        (
            "[store]\nbackend = \"mongo\"\n",
            "store.backend",
            "unknown variant",
        ),
    ];
    for (text, key, words) in cases {
        let e = err(text);
        assert_eq!(e.key, key, "{text}: {e}");
        assert!(e.problem.contains(words), "{text}: {e}");
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    }
}

#[test]
fn admin_tokens_grant_roles_and_errors_name_the_key() {
    let v = Config::from_toml(
        "[admin]\ntoken = \"a\"\ntokens = [{ token = \"v\", role = \"viewer\" }, { token = \"o\", role = \"operator\" }]\n",
    )
    .and_then(Config::validate)
    .expect("valid");
    let roles: Vec<(&str, Role)> = v
        .admin_tokens
        .iter()
        .map(|g| (g.token.expose(), g.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("a", Role::Admin),
            ("v", Role::Viewer),
            ("o", Role::Operator)
        ]
    );
    assert!(
        !format!("{v:?}").contains("\"v\""),
        "tokens stay out of Debug"
    );
    for (text, key, problem) in [
        (
            "[admin]\ntokens = [{ token = \"v\", role = \"viewer\" }, { token = \"x\", role = \"root\" }]\n",
            "admin.tokens[1].role",
            "unknown variant",
        ),
        (
            "[admin]\ntokens = [{ token = \"\", role = \"viewer\" }]\n",
            "admin.tokens[0].token",
            "must not be empty",
        ),
        (
            "[admin]\ntoken = \"\"\n",
            "admin.token",
            "must not be empty",
        ),
        (
            "[admin]\ntoken = \"t\"\ntokens = [{ token = \"u\", role = \"viewer\" }, { token = \"t\", role = \"viewer\" }]\n",
            "admin.tokens[1].token",
            "same token as admin.token",
        ),
        (
            "[admin]\ntokens = [{ token = \"u\", role = \"viewer\" }, { token = \"u\", role = \"admin\" }]\n",
            "admin.tokens[1].token",
            "same token as admin.tokens[0].token",
        ),
        (
            "[admin]\ntokens = [{ token = \"u\", role = \"viewer\", note = 1 }]\n",
            "admin.tokens[0].note",
            "unknown field",
        ),
        (
            "[admin]\ntokens = [{ token = \"u\" }]\n",
            "admin.tokens[0]",
            "role",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.key, key, "{e}");
        assert!(e.problem.contains(problem), "{e}");
        // The message never carries a token.
        assert!(!e.to_string().contains("\"u\""), "{e}");
    }
}

#[test]
fn the_ingress_public_url_is_an_http_base_url() {
    let v = Config::from_toml("[ingress]\npublic_url = \"https://hooks.example.com/gw/\"")
        .and_then(Config::validate)
        .expect("valid");
    assert_eq!(
        v.ingress_public_url.as_deref(),
        Some("https://hooks.example.com/gw")
    );
    for bad in [
        "hooks.example.com",
        "ftp://hooks.example.com",
        "https://hooks.example.com/?a=b",
        "https://user:pw@hooks.example.com",
        "/in",
    ] {
        let e = err(&format!("[ingress]\npublic_url = \"{bad}\""));
        assert_eq!(e.key, "ingress.public_url", "{bad}");
    }
}

#[test]
fn the_backlog_level_defaults_to_four_fifths_and_stays_under_the_limit() {
    let v = Config::from_toml("[store]\nmax_backlog = 1000\n")
        .and_then(Config::validate)
        .expect("valid");
    assert_eq!(v.backlog_high, Some(800));
    let v = Config::from_toml("[store]\nbacklog_high = 0\n")
        .and_then(Config::validate)
        .expect("valid");
    assert_eq!(v.backlog_high, None, "0 is never");
    let e = err("[store]\nmax_backlog = 10\nbacklog_high = 11\n");
    assert_eq!(e.key, "store.backlog_high");
}

#[test]
fn filters_and_transforms_are_compiled_and_their_errors_named() {
    let three = |filter: &str| {
        format!(
            "[[endpoints]]\nid = \"a\"\nurl = \"http://a.example\"\n\
             [[endpoints]]\nid = \"b\"\nurl = \"http://b.example\"\n\
             [[endpoints]]\nid = \"c\"\nurl = \"http://c.example\"\n{filter}\n"
        )
    };
    let e = err(&three(
        r#"filter = { body = { amount = { "$gte" = "100" } } }"#,
    ));
    assert_eq!(e.key, "endpoints[2].filter.body.amount.$gte");
    assert!(e.problem.contains("expected a number"), "{e}");
    // A string holding JSON is the same filter; a string that is not JSON is named.
    let e = err(&three(
        r#"filter = '{"body": {"amount": {"$gte": "100"}}}'"#,
    ));
    assert_eq!(e.key, "endpoints[2].filter.body.amount.$gte");
    let e = err(&three(r#"filter = '{"body": '"#));
    assert_eq!(e.key, "endpoints[2].filter");
    let ok = Config::from_toml(&three(
        r#"filter = { body = { action = { "$in" = ["opened"] } } }
transform = '.body |= {id}'"#,
    ))
    .and_then(Config::validate)
    .expect("valid");
    assert!(ok.endpoints[2].filter.is_some() && ok.endpoints[2].transform.is_some());
    assert!(ok.endpoints[0].filter.is_none() && ok.endpoints[0].transform.is_none());
    let e = err(&three("transform = '.body |'"));
    assert_eq!(e.key, "endpoints[2].transform");
    assert!(e.problem.starts_with("transform:"), "{e}");
    // The worker settings are checked before anything starts.
    for (key, value) in [
        ("workers", "0"),
        ("workers", "65"),
        ("timeout", "\"0s\""),
        ("timeout", "\"11s\""),
        ("max_output_bytes", "10"),
    ] {
        let e = err(&format!("[delivery.transform]\n{key} = {value}\n"));
        assert_eq!(e.key, format!("delivery.transform.{key}"), "{e}");
    }
    let e = err("[delivery.transform]\nwrokers = 2\n");
    assert_eq!(e.key, "delivery.transform.wrokers");
    let v = Config::from_toml("")
        .and_then(Config::validate)
        .expect("valid");
    assert_eq!(
        (v.transform.workers, v.transform.timeout.as_millis()),
        (2, 50)
    );
}

#[test]
fn a_files_endpoint_cannot_expire() {
    let e = err(
        "[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\n\n[[endpoints]]\nid = \"b\"\nurl = \"http://x\"\nexpires_at = \"2030-01-01T00:00:00Z\"\n",
    );
    assert_eq!(e.key, "endpoints[1].expires_at");
    assert!(e.problem.contains("through the API"), "{e}");
}
