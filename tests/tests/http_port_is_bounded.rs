//! The HTTP port bounds what it holds: a node limited to 1,024 open files, with 1,100
//! connections to its HTTP port held open from one address (never a byte sent), keeps
//! answering `/healthz` and accepting WebSocket connections from another address; the
//! held connections are closed after the header timeout.

use chathub_domain::Role;
use chathub_e2e::{HubProcess, dev_token};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection from 127.0.0.2 (another client than the flood's 127.0.0.1).
async fn from_another_address(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn healthz(addr: std::net::SocketAddr) -> bool {
    let mut s = from_another_address(addr).await;
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    matches!(read, Ok(Ok(_))) && answer.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn held_http_connections_starve_neither_port() {
    let node = HubProcess::spawn_with_nofile(1024, &["--http-header-timeout-secs", "3"]);
    let http = node.http_addr;
    let mut held = Vec::new();
    for _ in 0..1_100 {
        match tokio::net::TcpStream::connect(http).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("the test's own connect failed: {e}"),
        }
    }
    for round in 0..3 {
        assert!(healthz(http).await, "/healthz answered (round {round})");
        let token = dev_token("acme", Role::Agent, format!("a{round}").as_str());
        let ws_addr: std::net::SocketAddr =
            node.ws_url.trim_start_matches("ws://").parse().unwrap();
        let stream = from_another_address(ws_addr).await;
        let url = format!("{}/?token={token}", node.ws_url);
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::client_async(url, stream),
        )
        .await;
        assert!(
            matches!(connected, Ok(Ok(_))),
            "a WebSocket connected (round {round})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Past the header timeout the node has closed the held connections it had accepted.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut closed = 0;
    for s in held.iter_mut() {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 1_000,
        "only {closed} of the held connections were closed"
    );
}
