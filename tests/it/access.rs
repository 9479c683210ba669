//! Roles on the admin API (403 exactly where a token's role falls short, no secret for a
//! viewer) and the generated admin token (mode 0600, used by the CLI, refused when loose, not
//! made when a token is configured).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

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
    ("POST", "/endpoints/{id}/enable", "operator"),
    ("POST", "/endpoints/{id}/recover", "operator"),
    ("POST", "/endpoints/{id}/test-filter", "viewer"),
    ("POST", "/endpoints/{id}/messages:receive", "operator"),
    ("GET", "/endpoints/{id}/messages:stream", "operator"),
    ("POST", "/endpoints/{id}/messages:ack", "operator"),
    ("POST", "/endpoints/{id}/messages:nack", "operator"),
    ("POST", "/endpoints/{id}/messages:extend", "operator"),
    ("POST", "/endpoints/{id}/test-transform", "operator"),
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

/// Runs the real binary's CLI in `cwd` with no token in its environment.
async fn cli(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .current_dir(cwd)
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
async fn with_no_token_configured_serve_generates_a_private_one_the_cli_finds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "", &orders_source());
    let config = config.to_str().expect("utf-8");
    let gw = Binary::start(config.as_ref()).await;
    let file = dir.path().join("data").join("admin-token");
    let meta = std::fs::metadata(&file).expect("the token file is made");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).expect("read");
    let token = token.trim().to_string();
    assert!(token.starts_with("hg_") && token.len() >= 40, "{token}");
    // Its place is logged; the token is not.
    eventually("the file's path is logged", || {
        let log = gw.log.lock().expect("log");
        log.iter().any(|l| l.contains(&file.display().to_string()))
    })
    .await;
    assert!(
        !gw.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(&token)),
        "the token is in the log"
    );
    let (status, _) = admin_as(&gw.admin, &token, Method::GET, "/events", "").await;
    assert_eq!(status, 200);

    // The CLI reads it when given the config and no token ...
    let (code, out, err) = cli(
        dir.path(),
        &["events", "list", "--config", config, "--url", &gw.admin],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("EVENT"), "{out}");
    // ... a token given wins over the file ...
    let (code, _, err) = cli(
        dir.path(),
        &[
            "events", "list", "--config", config, "--url", &gw.admin, "--token", "wrong",
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("refused the token"), "{err}");
    // ... and without the config (and no gateway data here) there is no token to send.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = cli(elsewhere.path(), &["events", "list", "--url", &gw.admin]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
    gw.kill_9().await;

    // Restarted, it keeps the same token.
    let gw = Binary::start(config.as_ref()).await;
    let (status, _) = admin_as(&gw.admin, &token, Method::GET, "/events", "").await;
    assert_eq!(status, 200);
    let admin = gw.admin.clone();
    gw.kill_9().await;

    // A file others may read is refused, by the CLI and by serve.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = cli(
        dir.path(),
        &["events", "list", "--config", config, "--url", &admin],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("chmod 600") && err.contains("admin-token"),
        "{err}"
    );
    let serve = tokio::time::timeout(
        Duration::from_secs(60),
        cli(dir.path(), &["serve", "--config", config]),
    )
    .await
    .expect("serve stops at once");
    assert_eq!(serve.0, 2, "{}", serve.2);
    assert!(
        serve.2.contains("chmod 600") && !serve.2.contains(&token),
        "{}",
        serve.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_means_no_file_and_the_cli_uses_the_config() {
    let (gw, dir) = Gateway::start(&roles_config("")).await;
    let (status, _) = admin_call(&gw, Method::GET, "/events", "").await;
    assert_eq!(status, 200);
    assert!(!gw.data_dir.join("admin-token").exists());
    // The CLI takes the config's highest-role token (here admin.token) when given none.
    let config = dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n{}",
            dir.path().display(),
            roles_config("")
        ),
    )
    .expect("write");
    let config = config.to_str().expect("utf-8");
    let (code, out, err) = cli(
        dir.path(),
        &[
            "endpoints",
            "pause",
            "nope",
            "--config",
            config,
            "--url",
            &gw.admin,
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("404"),
        "an admin's call, refused for the id only: {out}{err}"
    );
    gw.stop().await;

    // Only viewers configured: still no file, and what a viewer may not do is a 403.
    let (gw, _dir) = Gateway::start(&format!(
        "{}\n[admin]\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}]\n",
        orders_source()
    ))
    .await;
    assert!(!gw.data_dir.join("admin-token").exists());
    let (status, answer) =
        admin_as(&gw.admin, VIEWER, Method::POST, "/endpoints/x/pause", "").await;
    assert_eq!(status, 403, "{answer}");
    gw.stop().await;
}
