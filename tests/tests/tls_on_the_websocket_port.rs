//! Optional TLS (`--tls-cert`, `--tls-key`): the WebSocket port speaks `wss://` with the
//! configured certificate, the whole protocol works over it, a plain-text client cannot
//! connect, and a node given an unusable certificate refuses to start.

use chathub_domain::Role;
use chathub_e2e::{TestHub, test_config};
use chathub_gateway::{GatewayError, MemoryStoreConfig, TlsConfig};
use chathub_protocol::{Codec, ServerFrame};
use futures::StreamExt;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

#[tokio::test]
async fn wss_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("chathub-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let mut config = test_config();
    config.tls = Some(TlsConfig {
        cert: cert_path.clone(),
        key: key_path.clone(),
    });
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    let token = hub.token("acme", Role::EndUser, "u-1");

    // A client that trusts exactly this certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(hub.ws_addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the configured certificate");
    let url = format!("wss://localhost:{}/?token={token}", hub.ws_addr.port());
    let (mut ws, response) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    let first = ws.next().await.unwrap().unwrap();
    let frame = Codec::Json
        .decode_server(first.into_data().as_ref())
        .unwrap();
    assert!(matches!(frame, ServerFrame::Welcome(_)), "{frame:?}");

    // Plain WebSocket on the TLS port: no session.
    let plain = tokio_tungstenite::connect_async(format!("{}/?token={token}", hub.url())).await;
    assert!(plain.is_err(), "a plain-text client cannot connect");

    // An unusable certificate stops the node at start.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    let mut config = test_config();
    config.tls = Some(TlsConfig {
        cert: cert_path,
        key: key_path,
    });
    let started = chathub_gateway::start_embedded(
        config,
        MemoryStoreConfig::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert!(matches!(started, Err(GatewayError::Tls(_))));
    std::fs::remove_dir_all(&dir).ok();
}
