//! A client that stops answering pings is closed with 4000; a client that stops reading
//! while its conversation is busy is closed with 4001 (slow consumer) and never slows the
//! others.

use chathub_domain::Role;
use chathub_e2e::{TestHub, expect_frame, test_config};
use chathub_gateway::MemoryStoreConfig;
use chathub_protocol::{Codec, Op, Request, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn silent_client_gets_keepalive_timeout() {
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(300);
    config.ping_timeout = Duration::from_millis(300);
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    let token = hub.token("acme", Role::EndUser, "u-1");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/?token={token}", hub.url()))
        .await
        .unwrap();
    // Do not read (so pings go unanswered) for longer than interval + timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut code = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(Some(f)) = m {
            code = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(4000));

    // A client that reads (and so answers pings) stays connected across several pings.
    let c = hub.connect(Role::EndUser, "u-2").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.request(Op::Ping {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_closed_as_slow() {
    let mut config = test_config();
    config.limits.outbox_frames = 1024;
    config.limits.outbox_bytes = 512 * 1024;
    config.write_timeout = Duration::from_millis(500);
    // The flood below is one client sending as fast as it can: not what this test limits.
    config.limits.rate_per_sec = 1_000_000;
    config.limits.rate_burst = 1_000_000;
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    let token = hub.token("acme", Role::Agent, "sleepy");
    // A small receive buffer, so the kernel cannot absorb the whole flood for us.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(hub.ws_addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("{}/?token={token}", hub.url()), stream)
            .await
            .unwrap();
    let sub = Request {
        id: 1,
        op: Op::Subscribe {
            conversation: Some(chathub_e2e::conv("u-1")),
            since: None,
            history_id: None,
        },
    };
    ws.send(Message::text(
        String::from_utf8(Codec::Json.encode_request(&sub).unwrap().to_vec()).unwrap(),
    ))
    .await
    .unwrap();
    let mut fast = hub.connect(Role::Agent, "fast").await;
    fast.subscribe(Some(&chathub_e2e::conv("u-1")), None)
        .await
        .unwrap();
    // Let the subscription land before the flood.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let user = hub.connect(Role::EndUser, "u-1").await;
    let text = "y".repeat(4000);
    const MESSAGES: u64 = 1000;
    let flood = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            user.send_text(None, &text, None, None).await.unwrap();
        }
    });
    // The server gives up on the sleepy client (the close is counted before it is sent)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = chathub_e2e::http_get(hub.http_addr, "/metrics").await;
        if metrics.contains("chathub_session_closes_total{code=\"4001\"}") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slow-consumer close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and, reading again, it finds the 4001 close after what fit in the buffers.
    let mut code = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Close(Some(f)) = m {
            code = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(4001));
    // Meanwhile the fast reader got everything, to the last event.
    flood.await.unwrap();
    expect_frame(
        &mut fast,
        "last event",
        |f| matches!(f, ServerFrame::Event(e) if e.event.seq == MESSAGES + 1),
    )
    .await;
}
