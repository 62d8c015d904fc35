//! The request dispatcher of a live node: each input is sent as one frame (text or
//! binary, by its first byte) on an agent's session of an in-process node with the demo
//! tenant, followed by a `ping`. The node must answer the ping (or close the socket with
//! a documented code, after which the next input reconnects) and never panic: a panic
//! anywhere in the node aborts the process, which the fuzzer reports as a crash.
#![no_main]

use chathub_client::{Client, ClientError};
use chathub_domain::Role;
use chathub_gateway::{GatewayConfig, LimitsConfig, MemoryStoreConfig, RunningGateway};
use chathub_protocol::Op;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

struct Harness {
    runtime: tokio::runtime::Runtime,
    url: String,
    token: String,
    _node: RunningGateway,
    client: tokio::sync::Mutex<Option<Client>>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // Tasks' panics are caught by tokio; make any of them a crash the fuzzer sees.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let config = GatewayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            http: None,
            seed: Some(std::sync::Arc::new(
                chathub::demo::seed(1_764_000_000_000).expect("demo seed"),
            )),
            limits: LimitsConfig {
                rate_per_sec: 1_000_000,
                rate_burst: 1_000_000,
                ..LimitsConfig::default()
            },
            ..GatewayConfig::default()
        };
        let auth = chathub_gateway::Authenticator::new(&config.auth);
        let token = auth
            .mint("demo", "carol", Role::Admin, None, 24 * 3600)
            .expect("token");
        let node = runtime
            .block_on(chathub_gateway::start_embedded(
                config,
                MemoryStoreConfig::default(),
                tokio_util::sync::CancellationToken::new(),
            ))
            .expect("node");
        Harness {
            url: format!("ws://{}", node.ws_addr),
            token,
            _node: node,
            runtime,
            client: tokio::sync::Mutex::new(None),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.runtime.block_on(async {
        let mut slot = h.client.lock().await;
        if slot.is_none() {
            *slot = Some(
                Client::connect(&h.url, &h.token)
                    .await
                    .expect("the node accepts connections"),
            );
        }
        let Some(client) = slot.as_mut() else { return };
        // Pushed frames (events of what the inputs subscribed to, queue frames) are not
        // what is checked here; drop them so the client's buffer never fills and stalls
        // the replies behind it.
        while client.try_next_event().is_some() {}
        let frame = match data.split_first() {
            Some((0, rest)) => Message::Binary(rest.to_vec().into()),
            _ => Message::text(String::from_utf8_lossy(data).into_owned()),
        };
        if client.send_raw(frame).await.is_err() {
            *slot = None;
            return;
        }
        match tokio::time::timeout(Duration::from_secs(5), client.request(Op::Ping {})).await {
            Ok(Ok(_)) => {}
            Ok(Err(ClientError::Server(e))) => panic!("ping after the input failed: {}", e.message),
            // Closed for a documented reason (too big, abuse): reconnect next time.
            Ok(Err(_)) => *slot = None,
            Err(_) => panic!("the node did not answer a ping within 5 s"),
        }
    });
});
