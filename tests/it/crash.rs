//! Crash safety through the real binary: `kill -9` in the middle of a burst, restart, and
//! every event that was answered 202 still reaches the receiver.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::harness::*;

/// Runs without quick repair, so a reopen after the crash checks the whole file: the other
/// crash tests cover the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_is_delivered_after_kill_9() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "",
        &format!(
            "[store]\nquick_repair = false\n{}",
            retrying_receiver(&receiver.url, 16)
        ),
    );

    // Until the crash the receiver fails everything, so what was acknowledged is still pending
    // or in flight when the process dies: only the store can bring it back.
    receiver.set_default_status(500);
    let binary = Binary::start(&config).await;
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let senders = spawn_senders(&binary.ingress, "burst", 16, &acked);
    // Kill it mid-burst, with many events acknowledged and deliveries in flight.
    eventually("300 events acknowledged", || {
        acked.lock().expect("lock").len() >= 300
    })
    .await;
    binary.kill_9().await;
    for s in senders {
        let _ = s.await;
    }
    let acked: HashSet<String> = acked.lock().expect("lock").clone();
    assert!(
        receiver.count() > 0,
        "attempts were in flight before the crash"
    );

    // Only what the receiver accepts after the restart counts as delivered.
    let before_restart = receiver.count();
    receiver.set_default_status(200);
    let restarted = Binary::start(&config).await;
    eventually("every acknowledged event delivered", || {
        let delivered: HashSet<String> = receiver.got()[before_restart..]
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        acked.is_subset(&delivered)
    })
    .await;
    restarted.kill_9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_redelivers_leased_deliveries_and_only_those() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "",
        &format!(
            "{}\n[[endpoints]]\nid = \"receiver\"\nurl = \"{}\"\nmax_in_flight = 1\n",
            orders_source(),
            receiver.url
        ),
    );
    let binary = Binary::start(&config).await;
    let url = format!("{}/in/orders", binary.ingress);
    // One delivered before the crash, one in flight (the receiver hangs) when it comes.
    let (status, delivered) = send(&url, "msg_done", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    receiver.hang();
    let (status, in_flight) = send(&url, "msg_flying", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);
    receiver.wait_for(2).await;
    binary.kill_9().await;

    receiver.unhang();
    let restarted = Binary::start(&config).await;
    let got = receiver.wait_for(3).await;
    let again = &got[2];
    assert_eq!(
        again.header("webhook-id"),
        in_flight["event_id"].as_str().expect("id")
    );
    assert_eq!(
        again.header("hookgate-attempt"),
        "1",
        "the interrupted attempt was never recorded"
    );
    let done = delivered["event_id"].as_str().expect("id");
    consistently(
        "the delivered event is not sent again",
        std::time::Duration::from_millis(300),
        || {
            receiver
                .got()
                .iter()
                .filter(|r| r.header("webhook-id") == done)
                .count()
                == 1
                && receiver.count() == 3
        },
    )
    .await;
    restarted.kill_9().await;
}

/// A replay goes in steps (each a transaction): a crash leaves whole steps replayed, never
/// part of one, and replaying again goes on with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_bulk_replay_replays_whole_steps() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "token = \"t\"",
        &format!(
            // Breaker off: every delivery must die (and be replayed), not wait for a probe.
            "{}\n[[endpoints]]\nid = \"receiver\"\nurl = \"{}\"\nmax_in_flight = 16\nretry = {{ max_attempts = 1 }}\nbreaker = \"off\"\n",
            orders_source(),
            receiver.url
        ),
    );
    let binary = Binary::start(&config).await;
    let url = format!("{}/in/orders", binary.ingress);
    let mut ids = HashSet::new();
    for i in 0..200 {
        let (status, answer) = send(&url, &format!("msg_{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
        ids.insert(answer["event_id"].as_str().expect("id").to_string());
    }
    let dead_count = |admin: String| async move {
        let mut n = 0;
        let mut cursor = String::new();
        loop {
            let resp = client()
                .get(format!("{admin}/api/v1/dead-letters?limit=500{cursor}"))
                .bearer_auth("t")
                .send()
                .await
                .expect("sent");
            let body: serde_json::Value =
                serde_json::from_str(&resp.text().await.expect("body")).expect("json");
            n += body["data"].as_array().map_or(0, Vec::len);
            match body["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => return n,
            }
        }
    };
    let admin = binary.admin.clone();
    eventually("all 200 dead", || receiver.count() >= 200).await;
    let mut all_dead = false;
    for _ in 0..100 {
        if dead_count(admin.clone()).await == 200 {
            all_dead = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(all_dead, "200 dead letters before the replay");

    // Replay, and kill the process while the replay is on its way.
    receiver.set_default_status(200);
    let replay = tokio::spawn(
        client()
            .post(format!("{admin}/api/v1/dead-letters/replay"))
            .bearer_auth("t")
            .body("{}")
            .send(),
    );
    binary.kill_9().await;
    let _ = replay.await;

    let restarted = Binary::start(&config).await;
    let left = dead_count(restarted.admin.clone()).await;
    assert_eq!(
        left % hookgate::store::REPLAY_STEP,
        0,
        "each step of a replay is all or nothing, but {left} of 200 are still dead"
    );
    let resp = client()
        .post(format!("{}/api/v1/dead-letters/replay", restarted.admin))
        .bearer_auth("t")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    eventually("every event delivered after the replay", || {
        let delivered: HashSet<String> = receiver
            .got()
            .iter()
            .filter(|r| r.header("hookgate-attempt") == "2")
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        ids.is_subset(&delivered)
    })
    .await;
    restarted.kill_9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempts_in_flight_finish_and_exits_0() {
    let receiver = Receiver::start().await;
    receiver.delay(std::time::Duration::from_millis(700));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "",
        &format!(
            "{}\n[[endpoints]]\nid = \"receiver\"\nurl = \"{}\"\n",
            orders_source_with("shutdown_grace = \"20s\""),
            receiver.url
        ),
    );
    let mut binary = Binary::start(&config).await;
    let (status, answer) = send(
        &format!("{}/in/orders", binary.ingress),
        "msg_term",
        r#"{"type":"a"}"#,
    )
    .await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    // The attempt is in flight (the receiver answers in 700 ms): ask the process to stop.
    let pid = binary.child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = binary.child.wait().await.expect("exits");
    assert!(exit.success(), "exit status {exit:?}");
    // The attempt finished before the exit and its result was committed.
    let store = open_store(&dir.path().join("data"));
    let (event, _) = store
        .event(event_id(&answer))
        .await
        .expect("read")
        .expect("stored");
    let d = store
        .delivery(event.deliveries[0].0)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(d.status, hookgate::model::event::DeliveryStatus::Delivered);
    assert_eq!(receiver.count(), 1);
}

/// The `orders` source and one endpoint `receiver` at `url` that retries fast and long, so
/// nothing dies during a crash test.
fn retrying_receiver(url: &str, max_in_flight: usize) -> String {
    // Breaker off: these receivers fail everything until the crash on purpose, and the point
    // is what the store brings back, not a breaker holding it for its cool-down.
    format!(
        "{}\n[[endpoints]]\nid = \"receiver\"\nurl = \"{url}\"\nmax_in_flight = {max_in_flight}\n\
         retry = {{ max_attempts = 1000, base = \"20ms\", max_delay = \"100ms\" }}\nbreaker = \"off\"\n",
        orders_source()
    )
}

/// Starts `clients` senders posting freshly signed webhooks to the binary at `ingress` until
/// their requests fail (the binary died); each 202's event id goes into `acked`.
fn spawn_senders(
    ingress: &str,
    tag: &str,
    clients: usize,
    acked: &Arc<Mutex<HashSet<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|client_no| {
            let url = format!("{ingress}/in/orders");
            let tag = tag.to_string();
            let acked = Arc::clone(acked);
            tokio::spawn(async move {
                let http = client();
                for i in 0.. {
                    let id = format!("msg_{tag}_{client_no}_{i}");
                    let body = format!(r#"{{"type":"order.created","n":{i}}}"#);
                    let headers = signed(INBOUND_SECRET, &id, now_secs(), body.as_bytes());
                    // Once the gateway dies, requests fail: that sender is done.
                    let Ok(resp) = post_raw(&http, &url, &headers, body).await else {
                        return;
                    };
                    if resp.status().as_u16() == 202 {
                        let text = resp.text().await.unwrap_or_default();
                        let answer: serde_json::Value =
                            serde_json::from_str(&text).unwrap_or_default();
                        if let Some(event_id) = answer["event_id"].as_str() {
                            acked.lock().expect("lock").insert(event_id.to_string());
                        }
                    }
                }
            })
        })
        .collect()
}

/// `kill -9` under load, again and again: `HOOKGATE_CRASH_ROUNDS` times (10 by default; set it
/// higher by hand, e.g. `HOOKGATE_CRASH_ROUNDS=200 cargo test --release --test it repeated`).
/// Every acknowledged event must reach the receiver, and the duplicates must be no more than
/// the deliveries that can have been taken and not yet recorded at the kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_kill_9_under_load_loses_nothing() {
    const MAX_IN_FLIGHT: usize = 8;
    // What a kill can leave delivered but not recorded: the lane's whole window (requests open,
    // and results answered but not yet committed), four times max_in_flight.
    const TAKEN_AT_ONCE: usize = 4 * MAX_IN_FLIGHT;
    let rounds: usize = std::env::var("HOOKGATE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "",
        &retrying_receiver(&receiver.url, MAX_IN_FLIGHT),
    );
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    for round in 0..rounds {
        let binary = Binary::start(&config).await;
        let before = acked.lock().expect("lock").len();
        let senders = spawn_senders(&binary.ingress, &format!("r{round}"), 8, &acked);
        eventually("this round's events acknowledged", || {
            acked.lock().expect("lock").len() >= before + 100
        })
        .await;
        binary.kill_9().await;
        for s in senders {
            let _ = s.await;
        }
    }
    let binary = Binary::start(&config).await;
    let acked: HashSet<String> = acked.lock().expect("lock").clone();
    let delivered = || -> HashSet<String> {
        receiver
            .got()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect()
    };
    eventually("every acknowledged event delivered", || {
        acked.is_subset(&delivered())
    })
    .await;
    binary.kill_9().await;
    let got = receiver.count();
    let distinct = delivered().len();
    eprintln!(
        "{rounds} kills: {} acknowledged, {distinct} distinct delivered, {} duplicates",
        acked.len(),
        got - distinct
    );
    assert!(
        got - distinct <= rounds * TAKEN_AT_ONCE,
        "{} duplicates in {rounds} crashes with at most {TAKEN_AT_ONCE} taken at once",
        got - distinct
    );
}

/// Ordered delivery across kill -9: 50 keys × 40 events, the receiver failing a third at
/// random; the process dies mid-delivery and restarts. Per key the receiver still sees the
/// events in commit order, with no gaps; only the event in flight at the crash may come
/// twice (its result was lost), never a later one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keys_stay_in_order_across_kill_9() {
    use crate::ordering::{KEYS, PER_KEY, check_fifo, key_name, ordered_endpoint, send_keys};
    let receiver = Receiver::start().await;
    receiver.fail_percent(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "",
        &format!(
            "{}\n{}",
            orders_source(),
            ordered_endpoint(&receiver.url, 16)
        ),
    );
    let binary = Binary::start(&config).await;
    let keys: Vec<String> = (0..KEYS).map(key_name).collect();
    send_keys(&format!("{}/in/orders", binary.ingress), &keys, PER_KEY).await;
    eventually("deliveries under way", || receiver.count() >= 600).await;
    binary.kill_9().await;
    let at_crash = check_fifo(&receiver.got(), true).expect("in order before the crash");
    assert!(
        keys.iter()
            .any(|k| at_crash.get(k).copied().unwrap_or(0) < PER_KEY),
        "the crash came in the middle: {at_crash:?}"
    );
    let restarted = Binary::start(&config).await;
    eventually("every key delivered in order", || {
        let done = check_fifo(&receiver.got(), true).expect("in order");
        keys.iter().all(|k| done.get(k) == Some(&PER_KEY))
    })
    .await;
    restarted.kill_9().await;
}
