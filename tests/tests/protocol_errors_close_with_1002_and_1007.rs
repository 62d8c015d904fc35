//! RFC 6455: a client that breaks the WebSocket protocol (here: reserved bits set) gets a
//! close frame with 1002, one whose text frame is not UTF-8 gets 1007 — then the
//! connection is dropped. Other clients go on.

use chathub_domain::Role;
use chathub_e2e::TestHub;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Connects as an agent, writes `frame` (raw bytes, masked as a client must) and
/// returns the close code the server sent.
async fn close_code_after(hub: &TestHub, frame: &[u8]) -> Option<u16> {
    let token = hub.token("acme", Role::Agent, "alice");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/?token={token}", hub.url()))
        .await
        .unwrap();
    match ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(frame).await.unwrap(),
        _ => unreachable!("plain test node"),
    }
    let deadline = std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout(deadline, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(close)))) => return Some(u16::from(close.code)),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {} // welcome, presence…
        }
    }
}

/// A masked client frame: `first` byte (FIN, RSV, opcode), then `payload`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[tokio::test]
async fn protocol_errors_and_bad_utf8_get_their_close_codes() {
    let hub = TestHub::start().await;
    let polite = hub.connect(Role::Agent, "bob").await;
    // FIN + RSV1 + text: no extension was negotiated, so RSV1 is a protocol error.
    assert_eq!(
        close_code_after(&hub, &frame(0xC1, b"{}")).await,
        Some(1002)
    );
    // FIN + text with a byte that is never UTF-8.
    assert_eq!(
        close_code_after(&hub, &frame(0x81, &[b'{', 0xff, b'}'])).await,
        Some(1007)
    );
    // A control frame may not be fragmented (a ping without FIN).
    assert_eq!(close_code_after(&hub, &frame(0x09, b"")).await, Some(1002));
    polite.request(chathub_protocol::Op::Ping {}).await.unwrap();
    hub.stop().await;
}
