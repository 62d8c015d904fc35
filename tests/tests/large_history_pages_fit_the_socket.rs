//! A legitimate reply never kills its socket: `history` with `limit` 200 over 200
//! messages of 4,096 `"` characters is ~1.6 MB in JSON (every quote escaped), more than
//! the socket's outbound budget. The page is cut short with `has_more`, the socket stays
//! open, and paging on reads every event once — in JSON and in MessagePack.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv};
use chathub_protocol::{Op, Reply};

/// Pages back from the newest event with `limit` 200; returns every seq read (newest
/// page first) and the size of the first page.
async fn read_back(client: &Client) -> (Vec<u64>, usize) {
    let mut seqs = Vec::new();
    let mut before = None;
    let mut first_page = None;
    loop {
        let reply = client
            .request(Op::History {
                conversation: Some(conv("u-1")),
                before,
                after: None,
                limit: Some(200),
            })
            .await
            .expect("the page is answered and the socket stays open");
        let Reply::History(page) = reply else {
            panic!("{reply:?}")
        };
        first_page.get_or_insert(page.events.len());
        let mut page_seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        before = page_seqs.first().copied();
        page_seqs.reverse();
        seqs.extend(page_seqs);
        if !page.has_more {
            return (seqs, first_page.unwrap_or(0));
        }
    }
}

async fn pages_fit(hub: TestHub) {
    let user = hub.connect(Role::EndUser, "u-1").await;
    let quotes = "\"".repeat(4096);
    for _ in 0..200 {
        user.send_text(None, &quotes, None, None).await.unwrap();
    }
    // opened + 200 messages.
    let expected: Vec<u64> = (1..=201).rev().collect();
    for client in [
        hub.connect_json(Role::Agent, "alice").await,
        hub.connect(Role::Agent, "bob").await,
    ] {
        let (seqs, first) = read_back(&client).await;
        assert!(first < 200, "the first page was cut ({first} events)");
        assert_eq!(seqs, expected, "every event once, newest first");
        client.request(Op::Ping {}).await.unwrap();
    }
    hub.stop().await;
}

#[tokio::test]
async fn large_pages_fit_embedded() {
    pages_fit(TestHub::start().await).await;
}

#[tokio::test]
async fn large_pages_fit_on_redis() {
    pages_fit(TestHub::start_redis().await).await;
}
