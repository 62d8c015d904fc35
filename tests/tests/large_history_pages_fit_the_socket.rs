//! A legitimate reply never kills its socket: `history` with `limit` 200 over 200
//! messages of 4,096 `"` characters is ~1.6 MB in JSON (every quote escaped), more than
//! the socket's outbound budget. The page is cut short with `has_more`, the socket stays
//! open, and paging on reads every event once — in JSON and in MessagePack. An answer that
//! cannot be cut (`canned_list` over hundreds of long canned texts) is `too_large`.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, http_request};
use chathub_protocol::ErrorCode;
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
async fn an_answer_too_large_for_the_socket_is_refused_not_fatal() {
    let hub = TestHub::start().await;
    let admin = hub.token("acme", Role::Admin, "carol");
    let text = "x".repeat(4000);
    for n in 0..300 {
        let body = serde_json::json!({"shortcut": format!("/c{n}"), "text": text}).to_string();
        let (status, answer) = http_request(
            hub.http_addr,
            "PUT",
            &format!("/admin/v1/canned/c{n}"),
            &admin,
            &body,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let agent = hub.connect_json(Role::Agent, "alice").await;
    let e = agent
        .request(Op::CannedList { query: None })
        .await
        .unwrap_err();
    assert_eq!(e.server().map(|e| e.code), Some(ErrorCode::TooLarge));
    // A narrower question is answered, on the same socket.
    let Reply::CannedList(some) = agent
        .request(Op::CannedList {
            query: Some("/c29".into()),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(some.items.len(), 11, "/c29 and /c290…/c299");
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
