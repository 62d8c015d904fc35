//! A socket that floods requests gets `rate_limited` past its budget and is closed with
//! 4101 when it keeps going; others are unaffected. Browsers from origins outside the
//! allowlist are refused with HTTP 403 before the upgrade.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, test_config};
use chathub_protocol::{Codec, ErrorCode, Op, Request, ServerFrame};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[tokio::test]
async fn flooding_is_refused_then_closed() {
    let mut config = test_config();
    config.limits.rate_per_sec = 10;
    config.limits.rate_burst = 20;
    config.limits.abuse_limit = 50;
    let hub = TestHub::start_with(config, Default::default()).await;
    let polite = hub.connect(Role::Agent, "polite").await;
    let mut flood = hub.connect(Role::Agent, "flood").await;
    // Fire requests without waiting for replies.
    let mut sent = 0;
    for id in 1_000..1_500u64 {
        let frame = Codec::MsgPack
            .encode_request(&Request {
                id,
                op: Op::Ping {},
            })
            .unwrap();
        if flood.send_raw(Message::Binary(frame)).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 70);
    let mut limited = 0;
    while let Some(frame) = flood
        .next_event_within(std::time::Duration::from_secs(5))
        .await
    {
        if let ServerFrame::Err(e) = frame {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert!(
                e.id.is_some_and(|id| id >= 1_000),
                "the refusal names the request"
            );
            limited += 1;
        }
    }
    assert!(limited >= 50, "only {limited} refusals");
    assert_eq!(flood.close_code().await, Some(4101));
    // The polite client never noticed.
    polite.request(Op::Ping {}).await.unwrap();
}

/// Control frames cost from the same budget: a flood of pings, or of unsolicited pongs,
/// from one authenticated socket is closed with 4101 like a request flood; a polite
/// client goes on.
async fn control_frame_flood_is_closed(pong: bool) {
    let mut config = test_config();
    config.limits.rate_per_sec = 10;
    config.limits.rate_burst = 20;
    config.limits.abuse_limit = 50;
    let hub = TestHub::start_with(config, Default::default()).await;
    let polite = hub.connect(Role::Agent, "polite").await;
    let mut flood = hub.connect(Role::Agent, "flood").await;
    let mut sent = 0;
    for _ in 0..2_000 {
        let frame = if pong {
            Message::Pong(Default::default())
        } else {
            Message::Ping(Default::default())
        };
        if flood.send_raw(frame).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 70, "only {sent} sent");
    while flood
        .next_event_within(std::time::Duration::from_secs(5))
        .await
        .is_some()
    {}
    assert_eq!(flood.close_code().await, Some(4101));
    polite.request(Op::Ping {}).await.unwrap();
}

#[tokio::test]
async fn a_ping_flood_is_closed() {
    control_frame_flood_is_closed(false).await;
}

#[tokio::test]
async fn a_pong_flood_is_closed() {
    control_frame_flood_is_closed(true).await;
}

async fn handshake_status(url: &str, token: &str, origin: Option<&str>) -> Result<(), u16> {
    let mut req = format!("{url}/?token={token}")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let _ = ws.close(None).await;
            Ok(())
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn only_allowlisted_origins_connect() {
    let mut config = test_config();
    config.allowed_origins = vec!["https://app.example.com".into()];
    let hub = TestHub::start_with(config, Default::default()).await;
    let token = hub.token("acme", Role::Agent, "alice");
    let url = hub.url();
    for bad in [
        "https://evil.test",
        "null",
        "https://app.example.com.evil.test",
        "https://evil.test.app.example.com",
        "https://app.example.co",
        "http://app.example.com",
        "https://app.example.com:8443",
        "wss://app.example.com",
    ] {
        assert_eq!(
            handshake_status(&url, &token, Some(bad)).await,
            Err(403),
            "{bad}"
        );
    }
    assert_eq!(
        handshake_status(&url, &token, Some("https://app.example.com")).await,
        Ok(())
    );
    assert_eq!(
        handshake_status(&url, &token, Some("HTTPS://APP.EXAMPLE.COM")).await,
        Ok(()),
        "origins are case-insensitive"
    );
    assert_eq!(
        handshake_status(&url, &token, None).await,
        Ok(()),
        "apps send no Origin"
    );
    let c = Client::connect(&url, &token).await.unwrap();
    c.request(Op::Ping {}).await.unwrap();
}

#[tokio::test]
async fn one_person_cannot_hold_more_than_their_sockets() {
    let mut config = test_config();
    config.limits.max_sockets_per_subject = 2;
    let hub = TestHub::start_with(config, Default::default()).await;
    let token = hub.token("acme", Role::EndUser, "u-1");
    let first = Client::connect(&hub.url(), &token).await.unwrap();
    let _second = Client::connect(&hub.url(), &token).await.unwrap();
    let third = Client::connect(&hub.url(), &token).await;
    assert!(matches!(
        third,
        Err(chathub_client::ClientError::Refused { status: 429, .. })
    ));
    // Somebody else is not affected; a freed place can be taken again.
    Client::connect(&hub.url(), &hub.token("acme", Role::EndUser, "u-2"))
        .await
        .unwrap();
    first.close().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Client::connect(&hub.url(), &token).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    }
}

#[tokio::test]
async fn half_open_sockets_do_not_stop_valid_connects() {
    let mut config = test_config();
    config.limits.max_handshakes = 64;
    config.handshake_timeout = std::time::Duration::from_secs(2);
    let hub = TestHub::start_with(config, Default::default()).await;
    // 50 sockets that connect and never say a word.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(hub.ws_addr).await.unwrap());
    }
    for i in 0..20 {
        let c = Client::connect(
            &hub.url(),
            &hub.token("acme", Role::EndUser, &format!("v{i}")),
        )
        .await
        .unwrap();
        c.request(Op::Ping {}).await.unwrap();
    }
    // The half-open ones are closed by the handshake timeout.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(2), idle[0].read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "half-open socket still open: {closed:?}"
    );
}

/// While one socket floods (and is refused, then closed), a polite client's round trips
/// stay as they were: the refusals cost the node little. (A loose bound on a shared,
/// noisy machine; the harness measures latency properly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_does_not_slow_the_others() {
    let mut config = test_config();
    config.limits.rate_per_sec = 10;
    config.limits.rate_burst = 20;
    config.limits.abuse_limit = 1_000_000;
    let hub = TestHub::start_with(config, Default::default()).await;
    let polite = hub.connect(Role::Agent, "polite").await;
    async fn round_trips(client: &Client, n: usize) -> Vec<std::time::Duration> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = std::time::Instant::now();
            client.request(Op::Ping {}).await.unwrap();
            times.push(start.elapsed());
            // Within the per-socket budget (10/s) this test sets.
            tokio::time::sleep(std::time::Duration::from_millis(125)).await;
        }
        times.sort();
        times
    }
    let p99 = |t: &[std::time::Duration]| t[t.len() * 99 / 100 - 1];
    let calm = round_trips(&polite, 60).await;

    let mut flood = hub.connect(Role::Agent, "flood").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut id = 1_000u64;
            // Bounded in count and time whatever happens to the polite client.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && id < 1_000_000
                && std::time::Instant::now() < deadline
            {
                let frame = Codec::MsgPack
                    .encode_request(&Request {
                        id,
                        op: Op::Ping {},
                    })
                    .unwrap();
                let sent = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    flood.send_raw(Message::Binary(frame)),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
                id += 1;
                // Read the refusals, as a real (abusive) client does; a client that
                // stops reading is the slow-consumer case, tested elsewhere.
                while flood.try_next_event().is_some() {}
                if id.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            id - 1_000
        })
    };
    let during = round_trips(&polite, 60).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flooded = flooding.await.unwrap();
    assert!(flooded > 1_000, "the flood ran ({flooded} requests)");
    let (before, under) = (p99(&calm), p99(&during));
    assert!(
        under < before * 5 + std::time::Duration::from_millis(20),
        "polite p99 {under:?} under the flood vs {before:?} before"
    );
}

/// One address cannot take every handshake slot: 1,100 half-open connections from
/// 127.0.0.1 hold only that address's share, and a polite client from 127.0.0.2 connects
/// while they are held.
#[tokio::test]
async fn a_slowloris_from_one_address_does_not_lock_out_another() {
    let mut config = test_config();
    config.handshake_timeout = std::time::Duration::from_secs(60);
    let hub = TestHub::start_with(config, Default::default()).await;
    let mut held = Vec::new();
    for _ in 0..1_100 {
        // Connected, never a byte sent: each holds a handshake slot until it times out.
        held.push(tokio::net::TcpStream::connect(hub.ws_addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(hub.ws_addr).await.unwrap();
    let token = hub.token("acme", Role::Agent, "polite");
    let url = format!("{}/?token={token}", hub.url());
    let (mut ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .expect("the polite client's handshake is served while the flood holds")
    .unwrap();
    use futures::StreamExt;
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("welcome"),
        "{welcome:?}"
    );
    drop(held);
}

/// Behind a balancer speaking the PROXY protocol (`--trusted-proxies`, `--proxy-protocol`)
/// the client's own address takes the per-address share: a slowloris from one client
/// (through the balancer) holds its share only, another client connects, and the
/// flooding client is refused while its share is full.
#[tokio::test]
async fn behind_a_proxy_the_share_is_the_clients() {
    use tokio::io::AsyncWriteExt;
    let mut config = test_config();
    config.handshake_timeout = std::time::Duration::from_secs(60);
    config.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.limits.proxy_protocol = true;
    config.limits.max_handshakes_per_address = 8;
    let hub = TestHub::start_with(config, Default::default()).await;
    let through_proxy = |client: &'static str| {
        let addr = hub.ws_addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n", addr.port());
            s.write_all(header.as_bytes()).await.unwrap();
            s
        }
    };
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(through_proxy("10.0.0.9").await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let token = hub.token("acme", Role::Agent, "polite");
    let url = format!("{}/?token={token}", hub.url());
    let handshake = |stream| {
        let url = url.clone();
        async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio_tungstenite::client_async(url, stream),
            )
            .await
        }
    };
    let other = handshake(through_proxy("10.0.0.2").await).await;
    assert!(
        matches!(other, Ok(Ok(_))),
        "another client connects: {other:?}"
    );
    let flooder = handshake(through_proxy("10.0.0.9").await).await;
    assert!(
        !matches!(flooder, Ok(Ok(_))),
        "the flooding client's share is full"
    );
    // From the balancer, a connection without its PROXY header is not served.
    let bare = tokio::net::TcpStream::connect(hub.ws_addr).await.unwrap();
    assert!(!matches!(handshake(bare).await, Ok(Ok(_))));
    drop(held);
}
