//! The handshake authenticates: missing, malformed, wrongly signed or expired tokens get
//! HTTP 401 and no socket; a good token works as a Bearer header or `?token=`; unknown
//! subprotocols are refused; no subprotocol means JSON.

use chathub_client::{Client, ClientError, ClientOptions};
use chathub_domain::Role;
use chathub_e2e::TestHub;
use chathub_gateway::{AuthConfig, Authenticator, Claims};
use chathub_protocol::{Codec, ServerFrame};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

async fn status_of(url: &str, headers: &[(&str, &str)]) -> Result<(), u16> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn bad_tokens_get_401_and_good_ones_connect() {
    let hub = TestHub::start().await;
    let url = hub.url();
    assert_eq!(status_of(&url, &[]).await, Err(401), "missing token");
    assert_eq!(
        status_of(&url, &[("authorization", "Bearer not.a.jwt")]).await,
        Err(401),
        "malformed token"
    );
    let foreign = Authenticator::new(&AuthConfig {
        secret: "another-secret".into(),
        leeway_secs: 0,
        ..AuthConfig::default()
    })
    .mint("acme", "u1", Role::EndUser, None, 60)
    .unwrap();
    assert_eq!(
        status_of(&url, &[("authorization", &format!("Bearer {foreign}"))]).await,
        Err(401),
        "wrongly signed token"
    );
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims {
            tenant: "acme".into(),
            sub: "u1".into(),
            role: Role::EndUser,
            privileges: None,
            exp: 1_000_000,
            name: None,
        },
        &jsonwebtoken::EncodingKey::from_secret(chathub_gateway::DEV_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        status_of(&url, &[("authorization", &format!("Bearer {expired}"))]).await,
        Err(401),
        "expired token"
    );
    assert_eq!(
        status_of(&format!("{url}/?token={expired}"), &[]).await,
        Err(401),
        "expired token in the query"
    );

    let token = hub.token("acme", Role::Agent, "alice");
    assert_eq!(
        status_of(
            &url,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("sec-websocket-protocol", "mqtt, stomp")
            ]
        )
        .await,
        Err(400),
        "unsupported subprotocol"
    );
    // Bearer header, MessagePack.
    let c = Client::connect(&url, &token).await.unwrap();
    assert_eq!(c.welcome().subject, "alice");
    assert_eq!(c.welcome().role, Role::Agent);
    // Query parameter, JSON.
    let options = ClientOptions {
        codec: Codec::Json,
        token_in_query: true,
        ..ClientOptions::default()
    };
    let c = Client::connect_with(&url, &token, options).await.unwrap();
    assert_eq!(c.welcome().tenant.as_str(), "acme");

    let refused = Client::connect(&url, "nonsense").await;
    assert!(matches!(
        refused,
        Err(ClientError::Refused { status: 401, .. })
    ));
}

#[tokio::test]
async fn no_subprotocol_means_json_text_frames() {
    let hub = TestHub::start().await;
    let token = hub.token("acme", Role::EndUser, "u1");
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("{}/?token={token}", hub.url()))
        .await
        .unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    let Some(Ok(Message::Text(text))) = ws.next().await else {
        panic!("expected a text frame")
    };
    let frame = Codec::Json.decode_server(text.as_bytes()).unwrap();
    assert!(matches!(frame, ServerFrame::Welcome(w) if w.subject == "u1"));
}

/// Compression is never negotiated (no `permessage-deflate`: a compression bomb cannot
/// cost the node memory, and frames are small anyway): a client offering it gets a
/// plain WebSocket.
#[tokio::test]
async fn permessage_deflate_is_not_negotiated() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = TestHub::start().await;
    let token = hub.token("acme", Role::EndUser, "u-1");
    let mut s = tokio::net::TcpStream::connect(hub.ws_addr).await.unwrap();
    let request = format!(
        "GET /?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        hub.ws_addr
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = s.read(&mut buf).await.unwrap();
    let response = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 101"), "{response}");
    assert!(!response.contains("sec-websocket-extensions"), "{response}");
}
