//! A JSON client and a MessagePack client following the same conversation receive the
//! same frames (one encoding per node per event, transcoded once for JSON).

use chathub_domain::Role;
use chathub_e2e::{TestHub, drain, event_seqs};
use std::time::Duration;

async fn json_and_msgpack_clients_see_identical_events(hub: TestHub) {
    let mut json = hub.connect_json(Role::Agent, "alice").await;
    let mut msgpack = hub.connect(Role::Agent, "bob").await;
    let c = chathub_e2e::conv("u-1");
    json.subscribe(Some(&c), None).await.unwrap();
    msgpack.subscribe(Some(&c), None).await.unwrap();
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "héllo ✓ \"quoted\"", None, Some("m-1"))
        .await
        .unwrap();
    json.send_text(Some(&c), "reply", Some(0), None)
        .await
        .unwrap();
    let a = drain(&mut json, Duration::from_millis(300)).await;
    let b = drain(&mut msgpack, Duration::from_millis(300)).await;
    assert_eq!(event_seqs(&a, "u-1"), vec![1, 2, 3, 4]);
    let events = |frames: Vec<chathub_protocol::ServerFrame>| {
        frames
            .into_iter()
            .filter(|f| {
                matches!(
                    f,
                    chathub_protocol::ServerFrame::Event(_)
                        | chathub_protocol::ServerFrame::Queue(_)
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(events(a), events(b), "same frames in both codecs");
}

#[tokio::test]
async fn json_and_msgpack_clients_see_identical_events_embedded() {
    json_and_msgpack_clients_see_identical_events(TestHub::start().await).await;
}

#[tokio::test]
async fn json_and_msgpack_clients_see_identical_events_redis() {
    json_and_msgpack_clients_see_identical_events(TestHub::start_redis().await).await;
}
