//! Roles on the admin API: 403 exactly where a token's role falls short, no secret for a
//! viewer.

use reqwest::Method;

use crate::harness::*;

const VIEWER: &str = "viewer-token";
const OPERATOR: &str = "operator-token";

/// Every `/api/v1` route and the least role it needs, written out here rather than read from
/// the code, so a route whose role changes there fails here. `{id}` is an id that does not
/// exist, so an allowed call changes nothing.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/openapi.json", "viewer"),
    ("GET", "/events", "viewer"),
    ("POST", "/events", "operator"),
    ("GET", "/events/{id}", "viewer"),
    ("GET", "/events/{id}/payload", "viewer"),
    ("GET", "/deliveries/{id}", "viewer"),
    ("POST", "/deliveries/{id}/retry", "operator"),
    ("GET", "/dead-letters", "viewer"),
    ("POST", "/dead-letters/replay", "operator"),
    ("GET", "/endpoints", "viewer"),
    ("POST", "/endpoints", "admin"),
    ("GET", "/endpoints/{id}", "viewer"),
    ("PATCH", "/endpoints/{id}", "admin"),
    ("DELETE", "/endpoints/{id}", "admin"),
    ("GET", "/endpoints/{id}/secret", "admin"),
    ("POST", "/endpoints/{id}/rotate-secret", "admin"),
    ("POST", "/endpoints/{id}/pause", "operator"),
    ("POST", "/endpoints/{id}/resume", "operator"),
    ("POST", "/endpoints/{id}/recover", "operator"),
    ("GET", "/sources", "viewer"),
    ("POST", "/sources", "admin"),
    ("GET", "/sources/{id}", "viewer"),
    ("PATCH", "/sources/{id}", "admin"),
    ("DELETE", "/sources/{id}", "admin"),
];

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "operator" => 1,
        "admin" => 2,
        other => panic!("no role {other}"),
    }
}

fn roles_config(rest: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}, {{ token = \"{OPERATOR}\", role = \"operator\" }}]\n{rest}",
        orders_source()
    )
}

#[tokio::test]
async fn each_role_gets_403_exactly_where_it_falls_short() {
    let (gw, _dir) = Gateway::start(&roles_config(
        "[[endpoints]]\nid = \"r\"\nurl = \"http://127.0.0.1:1/\"\n",
    ))
    .await;
    // The table covers every documented operation.
    let (status, doc) = admin_call(&gw, Method::GET, "/openapi.json", "").await;
    assert_eq!(status, 200);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            documented.push((
                method.to_uppercase(),
                path.trim_start_matches("/api/v1").to_string(),
            ));
            let (_, _, role) = EXPECTED
                .iter()
                .find(|(m, p, _)| *m == method.to_uppercase() && format!("/api/v1{p}") == *path)
                .unwrap_or_else(|| panic!("{method} {path} is not in the test's table"));
            assert_eq!(op["x-hookgate-role"], *role, "{method} {path}");
        }
    }
    assert_eq!(documented.len() + 1, EXPECTED.len(), "{documented:?}");

    for (token, role) in [
        (VIEWER, "viewer"),
        (OPERATOR, "operator"),
        (ADMIN_TOKEN, "admin"),
    ] {
        for (method, path, least) in EXPECTED {
            let path = path.replace("{id}", "nope");
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let (status, answer) = admin_as(&gw.admin, token, method.clone(), &path, "{}").await;
            if rank(role) < rank(least) {
                assert_eq!(status, 403, "{role}: {method} {path}: {answer}");
                assert_eq!(answer["error"]["code"], "forbidden");
                let article = if role == "viewer" { "a" } else { "an" };
                assert!(
                    error_message(&answer).contains(&format!(
                        "needs the {least} role; this token is {article} {role}"
                    )),
                    "{answer}"
                );
            } else {
                assert!(
                    status != 403 && status != 401,
                    "{role}: {method} {path}: {status} {answer}"
                );
            }
        }
    }
    // A 403 changes nothing: the operator could not delete the endpoint, nor the viewer pause it.
    let (_, _) = admin_as(&gw.admin, OPERATOR, Method::DELETE, "/endpoints/r", "").await;
    let (_, _) = admin_as(&gw.admin, VIEWER, Method::POST, "/endpoints/r/pause", "").await;
    let (status, endpoint) = admin_as(&gw.admin, VIEWER, Method::GET, "/endpoints/r", "").await;
    assert_eq!((status, endpoint["paused"].as_bool()), (200, Some(false)));
    // What an operator may do, it does.
    let (status, answer) =
        admin_as(&gw.admin, OPERATOR, Method::POST, "/endpoints/r/pause", "").await;
    assert_eq!(
        (status, answer["paused"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_secret() {
    let endpoint_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let (gw, _dir) = Gateway::start(&roles_config(&format!(
        "[[endpoints]]\nid = \"r\"\nurl = \"http://user:pw-HIDDEN@127.0.0.1:1/hook?key=q-HIDDEN\"\nsecret = \"{endpoint_secret}\"\nheaders = {{ authorization = \"Bearer h-HIDDEN\" }}\nretry = {{ max_attempts = 1 }}\n"
    )))
    .await;
    let (status, answer) = send(&gw.url("orders"), "msg_viewer", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202, "{answer}");
    let event = event_id(&answer);
    let delivery = gw.settled(event).await[0].id;
    let secrets = [
        "HIDDEN",
        &endpoint_secret["whsec_".len()..],
        &INBOUND_SECRET["whsec_".len()..],
    ];
    for path in [
        "/endpoints".to_string(),
        "/endpoints/r".into(),
        "/sources".into(),
        "/sources/orders".into(),
        "/events".into(),
        format!("/events/{event}"),
        format!("/events/{event}/payload"),
        format!("/deliveries/{delivery}"),
        "/dead-letters".into(),
    ] {
        let resp = client()
            .get(format!("{}/api/v1{path}", gw.admin))
            .bearer_auth(VIEWER)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let text = resp.text().await.expect("body");
        for secret in secrets {
            assert!(!text.contains(secret), "{path} shows {secret}: {text}");
        }
    }
    let (status, _) = admin_as(&gw.admin, VIEWER, Method::GET, "/endpoints/r/secret", "").await;
    assert_eq!(status, 403);
    let (status, _) = admin_as(&gw.admin, OPERATOR, Method::GET, "/endpoints/r/secret", "").await;
    assert_eq!(status, 403);
    // The check above looks for what is really there: an admin is shown it.
    let (status, shown) = admin_call(&gw, Method::GET, "/endpoints/r/secret", "").await;
    assert_eq!(status, 200);
    assert_eq!(shown["secret"], endpoint_secret);
    assert!(shown["url"].as_str().is_some_and(|u| u.contains("HIDDEN")));
    gw.stop().await;
}
