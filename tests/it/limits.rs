//! Limits on what a client can make the ingress listener hold: header and body deadlines, and
//! the connection cap.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn limits(keys: &str) -> String {
    format!("{}\n[ingress]\n{keys}\n", orders_source())
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.ingress.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection; what it sent before.
async fn read_until_closed(sock: &mut TcpStream) -> String {
    let mut out = Vec::new();
    // Bounds the wait only: the deadlines under test are a second or two.
    let read = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_cut_off() {
    let (gw, _dir) = Gateway::start(&limits("header_timeout = \"1s\"")).await;
    let mut sock = connect(&gw).await;
    sock.write_all(b"POST /in/orders HTTP/1.1\r\nhost: x\r\ncontent-le")
        .await
        .expect("write");
    let answer = read_until_closed(&mut sock).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // So is one that connects and sends nothing: idle connections do not hold slots forever.
    let mut idle = connect(&gw).await;
    let answer = read_until_closed(&mut idle).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A client that sends in time is served as usual.
    let (status, _) = send(&gw.url("orders"), "msg_after_stall", "{}").await;
    assert_eq!(status, 202);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stalls_in_its_body_gets_408_and_nothing_is_stored() {
    let (gw, dir) = Gateway::start(&limits("body_timeout = \"1s\"")).await;
    let mut sock = connect(&gw).await;
    let body = br#"{"type":"order.created","id":1}"#;
    let mut head =
        "POST /in/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n".to_string();
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    for (k, v) in signed(INBOUND_SECRET, "msg_slow_body", now_secs(), body) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await.expect("head");
    // Half the body, then nothing.
    sock.write_all(&body[..10]).await.expect("part of the body");
    let answer = read_until_closed(&mut sock).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
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
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (gw, _dir) = Gateway::start(&limits("max_connections = 2")).await;
    let idle_a = connect(&gw).await;
    let idle_b = connect(&gw).await;
    let gauge = "hookgate_open_connections{listener=\"ingress\"} 2";
    let metrics = |gw: &Gateway| {
        let url = format!("{}/metrics", gw.admin);
        async move {
            client()
                .get(url)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !metrics(&gw).await.contains(gauge) {
        assert!(tokio::time::Instant::now() < deadline, "never two open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = gw.url("orders");
    let mut third = tokio::spawn(async move { send(&url, "msg_third", "{}").await });
    // While both slots are held the third is not served...
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "a third connection was served beyond the cap"
    );
    // ... and it is as soon as one is given back.
    drop(idle_a);
    let (status, _) = third.await.expect("third request");
    assert_eq!(status, 202);
    drop(idle_b);
    gw.stop().await;
}
