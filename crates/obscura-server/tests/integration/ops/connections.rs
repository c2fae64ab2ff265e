//! Connection bounds of the API port (issue 14, item 6), over raw TCP: an unfinished request
//! head is cut off after the header-read timeout, a connection idle between requests (or with a
//! request whose bytes stopped moving) is closed after the idle timeout while a WebSocket is not, and connections beyond the cap are closed
//! at once while the ones held are served.

use std::time::Duration;

use obscura_testkit::{eventually, GatewayClient, TestServer, V1Client};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::STEP;

const REQUEST: &[u8] = b"GET /v1/no-such-route HTTP/1.1\r\nHost: obscura\r\n\r\n";

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.expect("connect to the API port")
}

/// Reads (and discards) until the server closes the connection; false if it is still open
/// after `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends one request and reads the response head; `None` if the connection closes or nothing
/// comes within `within`.
async fn request_head(conn: &mut TcpStream, within: Duration) -> Option<String> {
    conn.write_all(REQUEST).await.ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(within, async {
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_left_unfinished_is_closed_after_the_header_read_timeout() {
    let server = TestServer::with_flags(&[("--http-header-read-timeout-secs", "1")]).await;
    let mut stalled = connect(&server).await;
    stalled.write_all(b"GET /v1/no-such-route HTTP/1.1\r\nHost: obscura\r\n").await.unwrap();
    let mut prompt = connect(&server).await;
    let head = request_head(&mut prompt, STEP).await;
    assert!(head.is_some_and(|h| h.starts_with("HTTP/1.1 404")), "a complete head is served");
    assert!(closed_within(&mut stalled, STEP).await, "half a head is not waited on for ever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_stops_coming_is_closed_after_the_idle_timeout() {
    let server = TestServer::with_flags(&[("--http-idle-timeout-secs", "1")]).await;
    let alice = V1Client::new(&server.base).register(0).await;
    let mut stalled = connect(&server).await;
    let head = format!(
        "POST /v1/attachments HTTP/1.1\r\nHost: obscura\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100000\r\n\r\n",
        alice.token
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&[7u8; 1000]).await.unwrap();
    // The upload is in flight, waiting for 99,000 bytes that never come.
    assert!(closed_within(&mut stalled, STEP).await, "a stalled request does not hold its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_but_a_websocket_is_not() {
    let server =
        TestServer::with_flags(&[("--http-idle-timeout-secs", "1"), ("--pre-key-refill-threshold", "0")]).await;
    let alice = V1Client::new(&server.base).register(0).await;
    let mut gateway = GatewayClient::connect(&server.ws_base, &alice.token).await.unwrap();
    assert!(gateway.ping(b"connected", STEP).await);
    let mut silent = connect(&server).await;
    let mut kept_alive = connect(&server).await;
    let head = request_head(&mut kept_alive, STEP).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 404") && !head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(closed_within(&mut kept_alive, STEP).await, "closed once idle after its response");
    assert!(closed_within(&mut silent, STEP).await, "a connection that never sent a byte too");
    // The WebSocket has been quiet for longer than the HTTP idle timeout by now.
    assert!(gateway.ping(b"still here", STEP).await, "a WebSocket follows its own idle rules");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_closed_at_once_while_the_held_ones_are_served() {
    let server = TestServer::with_flags(&[("--max-connections", "3"), ("--http-idle-timeout-secs", "600")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&server).await);
    }
    // Accepted in order: the fourth finds every slot taken.
    let mut beyond = connect(&server).await;
    assert!(closed_within(&mut beyond, STEP).await, "the connection over the cap is closed");
    for conn in &mut held {
        let head = request_head(conn, STEP).await;
        assert!(head.is_some_and(|h| h.starts_with("HTTP/1.1 404")), "the held connections are served");
    }
    drop(held.pop());
    let admitted = eventually(STEP, || async {
        let mut conn = connect(&server).await;
        request_head(&mut conn, Duration::from_secs(1)).await.is_some()
    })
    .await;
    assert!(admitted, "a closed connection frees its slot");
    let metrics = reqwest::get(format!("{}/metrics", server.mgmt)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("obscura_http_connections_refused_total"), "refusals are counted");
}
