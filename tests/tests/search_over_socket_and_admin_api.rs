//! `search` over the socket and `GET /admin/v1/search` on a node with its data
//! directory: agents find their tenant's messages (never another tenant's), end users
//! are `forbidden`, a query with nothing to find is `bad_request`, an over-long one
//! `too_large`; a node without a record tier (`--ephemeral`) answers `unavailable`. The
//! same holds in cluster mode with a PostgreSQL archive (where a message is searchable
//! once archived, a few milliseconds after its acknowledgement).

use chathub_client::Client;
use chathub_domain::{ConversationId, Role};
use chathub_e2e::{HubProcess, dev_token, http_request, search_op as search};
use chathub_protocol::{ErrorCode, Op, Reply, SearchReply};

async fn connect(hub: &HubProcess, tenant: &str, role: Role, subject: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token(tenant, role, subject))
        .await
        .expect("connects")
}

async fn error_code(client: &Client, op: Op) -> Option<ErrorCode> {
    client.request(op).await.err()?.server().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_search_their_tenant_over_both_transports() {
    agents_search_their_tenant_on(&HubProcess::spawn(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_search_their_tenant_in_cluster_mode_with_an_archive() {
    let archived = chathub_e2e::ArchivedCluster::start(1);
    let hub = &archived.nodes[0];
    agents_search_their_tenant_on(hub).await;

    // A tenant writing one language may choose a stemming configuration: its messages
    // are re-indexed, and "works" now finds "does not work".
    let alice = connect(hub, "acme", Role::Agent, "alice").await;
    let first = first_search(&alice, "works", 0).await;
    assert!(first.hits.is_empty(), "words as written by default");
    let admin = dev_token("acme", Role::Admin, "root");
    let config = |body: &str| serde_json::from_str::<serde_json::Value>(body).expect("JSON");
    let (status, body) =
        http_request(hub.http_addr, "GET", "/admin/v1/search/config", &admin, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(config(&body)["config"], "chathub_simple");
    assert_eq!(config(&body)["configurable"], true);
    let put = |body: &'static str| {
        let admin = admin.clone();
        async move {
            http_request(
                hub.http_addr,
                "PUT",
                "/admin/v1/search/config",
                &admin,
                body,
            )
            .await
        }
    };
    let (status, body) = put(r#"{"config": "klingon"}"#).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(r#"{"config": "english"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(config(&body)["config"], "english");
    let Ok(Reply::Search(stemmed)) = alice.request(search("works")).await else {
        panic!("search answers")
    };
    assert_eq!(stemmed.hits.len(), 1, "{stemmed:?}");
    // Agents may read nothing of it, let alone change it.
    let agent = dev_token("acme", Role::Agent, "alice");
    let (status, _) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/search/config",
        &agent,
        r#"{"config": null}"#,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = put(r#"{"config": null}"#).await;
    assert_eq!(
        (status, config(&body)["config"].clone()),
        (200, "chathub_simple".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_search_configuration_is_fixed() {
    let hub = HubProcess::spawn(&[]);
    let admin = dev_token("acme", Role::Admin, "root");
    let (status, body) =
        http_request(hub.http_addr, "GET", "/admin/v1/search/config", &admin, "").await;
    assert_eq!(status, 200, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (got["config"].as_str(), got["configurable"].as_bool()),
        (Some("simple"), Some(false))
    );
    let (status, body) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/search/config",
        &admin,
        r#"{"config": "english"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

/// The first search, repeated until it finds `wanted` hits (the archive copies a moment
/// after the acknowledgement) for at most a few seconds.
async fn first_search(client: &Client, query: &str, wanted: usize) -> SearchReply {
    let start = std::time::Instant::now();
    loop {
        let Ok(Reply::Search(found)) = client.request(search(query)).await else {
            panic!("search answers")
        };
        if found.hits.len() >= wanted || start.elapsed() > std::time::Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn agents_search_their_tenant_on(hub: &HubProcess) {
    let ann = connect(hub, "acme", Role::EndUser, "ann").await;
    ann.send_text(None, "My coupon code does not work", None, None)
        .await
        .expect("sent");
    let alice = connect(hub, "acme", Role::Agent, "alice").await;
    let ann_conv = ConversationId::new("ann").expect("id");
    alice
        .send_text(Some(&ann_conv), "Which coupon did you use?", Some(0), None)
        .await
        .expect("sent");
    let eve = connect(hub, "other", Role::EndUser, "eve").await;
    eve.send_text(None, "coupon coupon coupon", None, None)
        .await
        .expect("sent");

    let found = first_search(&alice, "coupon", 2).await;
    let seqs: Vec<(String, u64)> = found
        .hits
        .iter()
        .map(|h| (h.conversation.to_string(), h.seq))
        .collect();
    assert_eq!(
        seqs,
        [("ann".into(), 4), ("ann".into(), 2)],
        "newest first, one tenant"
    );
    assert!(
        found.hits[0]
            .snippet
            .iter()
            .any(|p| p.hit && p.text == "coupon")
    );
    assert_eq!(found.hits[0].author.id, "alice");

    let Ok(Reply::Search(phrase)) = alice.request(search("\"does not work\" -refund")).await else {
        panic!("search answers")
    };
    assert_eq!(phrase.hits.len(), 1);

    // The admin API: the same search, the same answer.
    let admin = dev_token("acme", Role::Admin, "root");
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/search?q=coupon&end_user=ann&limit=1",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: SearchReply = serde_json::from_str(&body).expect("a search reply");
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].seq, 4);
    let cursor = page.next_cursor.expect("a second page");
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        &format!("/admin/v1/search?q=coupon&end_user=ann&limit=1&cursor={cursor}"),
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: SearchReply = serde_json::from_str(&body).expect("a search reply");
    assert_eq!(page.hits.iter().map(|h| h.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(page.next_cursor, None);

    // Refusals, alike on both transports.
    assert_eq!(
        error_code(&ann, search("coupon")).await,
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        error_code(&alice, search("-coupon")).await,
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(
        error_code(&alice, search("!!!")).await,
        Some(ErrorCode::BadRequest)
    );
    let long = "coupon ".repeat(100);
    assert_eq!(
        error_code(&alice, search(&long)).await,
        Some(ErrorCode::TooLarge)
    );
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/search?q=-coupon",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_request"), "{body}");
    // A query string that does not parse is a JSON `bad_request` too.
    for path in ["/admin/v1/search", "/admin/v1/search?q=coupon&limit=many"] {
        let (status, body) = http_request(hub.http_addr, "GET", path, &admin, "").await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["code"], "bad_request", "{path}: {body}");
    }
    let user = dev_token("acme", Role::EndUser, "ann");
    let (status, body) =
        http_request(hub.http_addr, "GET", "/admin/v1/search?q=coupon", &user, "").await;
    assert_eq!(status, 403, "{body}");
    // The other tenant's agent sees only eve's message.
    let other = connect(hub, "other", Role::Agent, "olga").await;
    let theirs = first_search(&other, "coupon", 1).await;
    assert_eq!(theirs.hits.len(), 1);
    assert_eq!(theirs.hits[0].conversation.to_string(), "eve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_record_tier_says_unavailable() {
    let hub = HubProcess::spawn(&["--ephemeral"]);
    let alice = connect(&hub, "acme", Role::Agent, "alice").await;
    assert_eq!(
        error_code(&alice, search("coupon")).await,
        Some(ErrorCode::Unavailable)
    );
    // Nor has a cluster node without an archive.
    let redis = chathub_testkit::RedisServer::start();
    let node = HubProcess::spawn_redis(&redis.url(), &[]);
    let bob = connect(&node, "acme", Role::Agent, "bob").await;
    assert_eq!(
        error_code(&bob, search("coupon")).await,
        Some(ErrorCode::Unavailable)
    );
}
