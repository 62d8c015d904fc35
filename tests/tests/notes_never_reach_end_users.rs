//! Private notes (`send` with `visibility: "agents"`) reach every agent and no end user,
//! on any path. Agents on two nodes write notes into ann's conversation, interleaved
//! with messages both ways, while ann's devices follow it (one MessagePack, one JSON);
//! bea is offline when an agent writes her a note and a message. Then, for the end
//! users: live frames, replays from `seq` 0 and from the middle, `history` paged both
//! ways, transcripts (JSON, text, HTML), the export, the offline webhook, search and the
//! queue's preview hold no note text — and what they do get is exactly the agents' view
//! minus the notes, each event once, in order (the resume guarantee holds for both
//! audiences). Agents see the notes everywhere; a note never changes ownership.
//!
//! On the embedded default and on three nodes over a 3-master Redis Cluster with the
//! PostgreSQL archive.

use chathub_client::{Client, ClientOptions};
use chathub_domain::{Event, EventBody, Role, Status};
use chathub_e2e::{
    HubProcess, Nodes, conv, dev_token, drain, full_history, http_get_as, list, search_op,
    spawn_cluster_with_archive_and_s3, texts, webhook_receiver,
};
use chathub_protocol::{Codec, ErrorCode, Op, Reply, ServerFrame, Visibility};
use std::time::Duration;

/// Every note's text carries this word: finding it anywhere an end user reads is a leak.
const SECRET: &str = "SECRETNOTE";

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str, codec: Codec) -> Client {
    let options = ClientOptions {
        codec,
        ..ClientOptions::default()
    };
    Client::connect_with(nodes.ws(i), &dev_token("acme", role, who), options)
        .await
        .unwrap()
}

/// The conversation events among `frames`, in arrival order.
fn events_of(frames: &[ServerFrame]) -> Vec<Event> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Event(e) => Some(e.event.clone()),
            _ => None,
        })
        .collect()
}

fn assert_no_leak(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "a note leaked into {what}: {text}");
}

/// An end user's view of `agents_view`: the same events without the notes.
fn without_notes(agents_view: &[Event]) -> Vec<Event> {
    agents_view
        .iter()
        .filter(|e| !matches!(e.body, EventBody::Note { .. }))
        .cloned()
        .collect()
}

async fn history_page(
    client: &Client,
    before: Option<u64>,
    after: Option<u64>,
) -> (Vec<Event>, bool) {
    let reply = client
        .request(Op::History {
            conversation: None,
            before,
            after,
            limit: Some(2),
        })
        .await
        .unwrap();
    let Reply::History(page) = reply else {
        panic!("unexpected {reply:?}")
    };
    (page.events, page.has_more)
}

async fn notes_scenario(
    nodes: Nodes,
    hook: std::sync::Arc<std::sync::Mutex<Vec<chathub_e2e::Received>>>,
) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let ann_c = conv("ann");
    let alice = connect(&nodes, 0, Role::Agent, "alice", Codec::MsgPack).await;
    let mut bob = connect(&nodes, 1, Role::Agent, "bob", Codec::Json).await;
    let mut ann_mp = connect(&nodes, 1, Role::EndUser, "ann", Codec::MsgPack).await;
    let mut ann_json = connect(&nodes, 2, Role::EndUser, "ann", Codec::Json).await;

    // No thread yet: nothing to note on; end users cannot write notes.
    let err = alice.send_note(&ann_c, "early", None).await.unwrap_err();
    assert_eq!(
        err.server().map(|e| e.code),
        Some(ErrorCode::InvalidState),
        "{err:?}"
    );
    ann_mp.subscribe(None, None).await.unwrap();
    ann_json.subscribe(None, None).await.unwrap();
    bob.subscribe(Some(&ann_c), None).await.unwrap();
    let forged = ann_mp
        .request(Op::Send {
            conversation: None,
            client_msg_id: None,
            text: format!("{SECRET} forged"),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: None,
            visibility: Visibility::Agents,
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        forged.server().map(|e| e.code),
        Some(ErrorCode::Forbidden),
        "{forged:?}"
    );

    // The conversation: messages and notes interleaved, agents on two nodes.
    ann_mp
        .send_text(None, "hello, my order is late", None, None)
        .await
        .unwrap();
    let n1 = alice
        .send_note(
            &ann_c,
            &format!("{SECRET} 1: VIP, refund approved"),
            Some("n1"),
        )
        .await
        .unwrap();
    // A note takes nothing: the conversation is still unanswered, epoch 0.
    assert_eq!(
        (n1.status, n1.owner.as_ref(), n1.epoch),
        (Status::Unanswered, None, 0)
    );
    // Its retry is the same note.
    let again = alice
        .send_note(
            &ann_c,
            &format!("{SECRET} 1: VIP, refund approved"),
            Some("n1"),
        )
        .await
        .unwrap();
    assert_eq!(again.seq, n1.seq);
    alice
        .send_text(Some(&ann_c), "Sorry! Refund on its way", Some(0), None)
        .await
        .unwrap();
    let n2 = bob
        .send_note(&ann_c, &format!("{SECRET} 2: watch for chargebacks"), None)
        .await
        .unwrap();
    assert_eq!(
        n2.owner.as_ref().map(|o| o.as_str()),
        Some("alice"),
        "bob's note took nothing"
    );
    assert_eq!(n2.epoch, 1);
    ann_json
        .send_text(None, "thanks", None, None)
        .await
        .unwrap();
    alice
        .send_note(&ann_c, &format!("{SECRET} 3: last one"), None)
        .await
        .unwrap();
    let last = alice
        .send_text(Some(&ann_c), "anything else?", Some(1), None)
        .await
        .unwrap();

    // The agents' view: every event, notes included.
    let agents_view = full_history(&alice, "ann").await;
    assert_eq!(agents_view.last().map(|e| e.seq), Some(last.seq));
    let notes = agents_view
        .iter()
        .filter(|e| matches!(e.body, EventBody::Note { .. }))
        .count();
    assert_eq!(notes, 3, "{agents_view:?}");
    let user_view = without_notes(&agents_view);
    // Bob, following live, saw the notes too.
    let bob_live = events_of(&drain(&mut bob, Duration::from_millis(500)).await);
    assert_eq!(
        bob_live, agents_view,
        "an agent's live view is the whole thread"
    );

    // Live, both codecs: exactly the end user's view, once each, in order.
    for (name, device) in [("msgpack", &mut ann_mp), ("json", &mut ann_json)] {
        let frames = drain(device, Duration::from_millis(500)).await;
        for frame in &frames {
            assert_no_leak(
                &format!("a live {name} frame"),
                &serde_json::to_string(frame).unwrap(),
            );
        }
        assert_eq!(events_of(&frames), user_view, "live {name} view");
    }
    // Replays: from 0 and from the middle, on other nodes, both codecs; then live.
    let middle = user_view[1].seq;
    for (i, codec) in [Codec::MsgPack, Codec::Json].into_iter().enumerate() {
        for since in [0, middle] {
            let expected: Vec<Event> = without_notes(&full_history(&alice, "ann").await)
                .into_iter()
                .filter(|e| e.seq > since)
                .collect();
            let mut device = connect(&nodes, i, Role::EndUser, "ann", codec).await;
            let sub = device.subscribe(None, Some(since)).await.unwrap();
            assert!(!sub.history_truncated && !sub.history_lost, "{sub:?}");
            let frames = drain(&mut device, Duration::from_millis(300)).await;
            for frame in &frames {
                assert_no_leak("a replay", &serde_json::to_string(frame).unwrap());
            }
            assert_eq!(
                events_of(&frames),
                expected,
                "replay since {since} ({codec:?})"
            );
            // Live after the replay: the next message arrives, the next note does not.
            alice
                .send_note(&ann_c, &format!("{SECRET} 4: after"), None)
                .await
                .unwrap();
            let m = alice
                .send_text(Some(&ann_c), "still there?", Some(1), None)
                .await
                .unwrap();
            let frames = drain(&mut device, Duration::from_millis(500)).await;
            let live: Vec<u64> = events_of(&frames).iter().map(|e| e.seq).collect();
            assert_eq!(live, vec![m.seq], "live after the replay ({codec:?})");
        }
    }
    let agents_view = full_history(&alice, "ann").await;
    let user_view = without_notes(&agents_view);

    // History, paged both ways in pages of 2.
    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = history_page(&ann_mp, None, Some(after)).await;
        if let Some(e) = page.last() {
            after = e.seq;
        }
        forward.extend(page);
        if !more {
            break;
        }
    }
    assert_eq!(forward, user_view, "history forwards");
    let (mut backward, mut more) = history_page(&ann_json, None, None).await;
    while more {
        let (page, m) = history_page(&ann_json, Some(backward[0].seq), None).await;
        more = m;
        backward.splice(0..0, page);
    }
    assert_eq!(backward, user_view, "history backwards");

    // Transcripts, over the socket and the admin API, JSON, text and HTML.
    for format in [None, Some("text"), Some("html")] {
        let reply = ann_mp
            .request(Op::Transcript {
                conversation: None,
                format: format.map(str::to_owned),
            })
            .await
            .unwrap();
        assert_no_leak(
            "the end user's transcript",
            &serde_json::to_string(&reply).unwrap(),
        );
    }
    let ann_token = dev_token("acme", Role::EndUser, "ann");
    for format in ["json", "text", "html"] {
        let path = format!("/admin/v1/conversations/ann/transcript?format={format}");
        let (status, body) = http_get_as(nodes.http(1), &ann_token, &path).await;
        assert_eq!(status, 200, "{body}");
        assert_no_leak("the end user's transcript (admin API)", &body);
        // An agent's transcript has them.
        let agent_token = dev_token("acme", Role::Agent, "alice");
        let (status, body) = http_get_as(nodes.http(1), &agent_token, &path).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(SECRET),
            "agents' transcripts show notes: {body}"
        );
    }
    // The export handed to the person.
    for format in ["json", "text"] {
        let path = format!("/admin/v1/users/ann/export?format={format}");
        let (status, body) = http_get_as(nodes.http(0), &admin, &path).await;
        assert_eq!(status, 200, "{body}");
        assert_no_leak("the export", &body);
        assert!(body.contains("anything else?"), "{body}");
    }
    // Search is for agents; the queue's preview is the last message, never a note.
    let err = ann_mp.request(search_op("refund")).await.unwrap_err();
    assert_eq!(err.server().map(|e| e.code), Some(ErrorCode::Forbidden));
    alice
        .send_note(&ann_c, &format!("{SECRET} 5: the very last event"), None)
        .await
        .unwrap();
    let active = list(&alice, Status::Active).await;
    let entry = active
        .items
        .iter()
        .find(|i| i.conversation == ann_c)
        .expect("listed");
    assert_eq!(entry.preview.as_deref(), Some("still there?"));

    // The offline webhook: bea is away when an agent writes her a note and a message.
    let bea = connect(&nodes, 2, Role::EndUser, "bea", Codec::MsgPack).await;
    bea.send_text(None, "hi", None, None).await.unwrap();
    bea.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bea_c = conv("bea");
    alice
        .send_note(&bea_c, &format!("{SECRET} 6: bea is offline"), None)
        .await
        .unwrap();
    alice
        .send_text(Some(&bea_c), "bea, your answer", Some(0), None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bodies: Vec<String> = hook
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect();
        if bodies.iter().any(|b| b.contains("bea, your answer")) {
            for body in &bodies {
                assert_no_leak("a webhook delivery", body);
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message's push came: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the agents' search does not serve notes to anyone.
    let reply = alice.request(search_op(SECRET)).await.unwrap();
    let Reply::Search(page) = reply else {
        panic!("unexpected {reply:?}")
    };
    assert!(page.hits.is_empty(), "{page:?}");
    // Ann's own messages and the agents' replies, and nothing else.
    assert_eq!(texts(&user_view).len(), 4 + 4, "{user_view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_never_reach_end_users_on_the_embedded_default() {
    let (url, hook) = webhook_receiver(0).await;
    let node = HubProcess::spawn(&[
        "--webhook-url",
        &url,
        "--webhook-secret",
        "webhook-secret-0123",
    ]);
    notes_scenario(
        Nodes {
            nodes: vec![node],
            archive_lags: false,
            keep: Vec::new(),
        },
        hook,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_never_reach_end_users_on_a_cluster() {
    let (url, hook) = webhook_receiver(0).await;
    let (nodes, keep) = spawn_cluster_with_archive_and_s3(
        3,
        &[
            "--webhook-url",
            &url,
            "--webhook-secret",
            "webhook-secret-0123",
        ],
    );
    notes_scenario(
        Nodes {
            nodes,
            archive_lags: true,
            keep,
        },
        hook,
    )
    .await;
}

/// `@bob` in a note tells bob on every device (on other nodes too) with a `mention`
/// notice, and nobody else; an unknown name is refused and records nothing.
async fn mentions_scenario(nodes: Nodes) {
    let ann_c = conv("ann");
    let alice = connect(&nodes, 0, Role::Agent, "alice", Codec::MsgPack).await;
    let mut bob_here = connect(&nodes, 1, Role::Agent, "bob", Codec::MsgPack).await;
    let mut bob_there = connect(&nodes, 2, Role::Agent, "bob", Codec::Json).await;
    let mut dora = connect(&nodes, 1, Role::Agent, "dora", Codec::MsgPack).await;
    let mut ann = connect(&nodes, 2, Role::EndUser, "ann", Codec::MsgPack).await;
    ann.subscribe(None, None).await.unwrap();
    ann.send_text(None, "hello?", None, None).await.unwrap();

    let before = full_history(&alice, "ann").await.len();
    let err = alice
        .send_note(&ann_c, &format!("{SECRET} ask @zed about it"), None)
        .await
        .unwrap_err();
    let frame = err.server().expect("an error frame");
    assert_eq!(frame.code, ErrorCode::BadRequest);
    assert!(frame.message.contains("@zed"), "{frame:?}");
    assert_eq!(
        full_history(&alice, "ann").await.len(),
        before,
        "nothing recorded"
    );

    let ack = alice
        .send_note(
            &ann_c,
            &format!("{SECRET} @bob can you check the refund?"),
            None,
        )
        .await
        .unwrap();
    for (name, device) in [("bob here", &mut bob_here), ("bob there", &mut bob_there)] {
        let frames = drain(device, Duration::from_millis(700)).await;
        let told: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Mention(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(told.len(), 1, "{name}: {frames:?}");
        assert_eq!(told[0].conversation, ann_c);
        assert_eq!(told[0].seq, ack.seq);
        assert_eq!(told[0].by.id, "alice");
        assert!(told[0].text.contains("can you check the refund"));
    }
    let frames = drain(&mut dora, Duration::from_millis(300)).await;
    assert!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Mention(_))),
        "dora was not mentioned: {frames:?}"
    );
    let frames = drain(&mut ann, Duration::from_millis(300)).await;
    for frame in &frames {
        assert_no_leak(
            "the end user's frames",
            &serde_json::to_string(frame).unwrap(),
        );
    }
    // The note records whom it mentions.
    let history = full_history(&alice, "ann").await;
    let Some(EventBody::Note { mentions, .. }) = history.last().map(|e| &e.body) else {
        panic!("{history:?}")
    };
    assert_eq!(
        mentions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );

    // A take-over with a handover note: the message, then bob's note; a take-over that
    // loses its race leaves no note.
    alice
        .send_text(Some(&ann_c), "I'm on it", Some(0), None)
        .await
        .unwrap();
    let take_over = |epoch, key: &str, note: &str| Op::Send {
        conversation: Some(ann_c.clone()),
        client_msg_id: Some(key.to_owned()),
        text: "Bob here, taking over".into(),
        canned: None,
        engagement: None,
        attachment: None,
        epoch: Some(epoch),
        visibility: Visibility::All,
        handover_note: Some(note.to_owned()),
    };
    let lost = bob_here
        .request(take_over(0, "t0", &format!("{SECRET} stale")))
        .await
        .unwrap_err();
    assert_eq!(lost.server().map(|e| e.code), Some(ErrorCode::Conflict));
    let note = format!("{SECRET} alice is off shift");
    for _ in 0..2 {
        // Twice: the retry records nothing more.
        bob_here.request(take_over(1, "t1", &note)).await.unwrap();
    }
    let history = full_history(&alice, "ann").await;
    let tail: Vec<&EventBody> = history
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|e| &e.body)
        .collect();
    assert!(
        matches!(
            tail[0],
            EventBody::Status {
                cause: chathub_domain::Cause::TakenOver,
                ..
            }
        ),
        "{tail:?}"
    );
    assert!(matches!(tail[1], EventBody::Message { .. }), "{tail:?}");
    assert!(
        matches!(tail[2], EventBody::Note { author, text, .. } if author.id == "bob" && *text == note),
        "{tail:?}"
    );
    let stale = history
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Note { text, .. } if text.contains("stale")))
        .count();
    assert_eq!(stale, 0, "a lost take-over leaves no note");
    let frames = drain(&mut ann, Duration::from_millis(300)).await;
    for frame in &frames {
        assert_no_leak(
            "the end user's frames",
            &serde_json::to_string(frame).unwrap(),
        );
    }
    assert!(
        events_of(&frames)
            .iter()
            .any(|e| texts(std::slice::from_ref(e)) == ["Bob here, taking over"]),
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_tell_the_agent_on_the_embedded_default() {
    mentions_scenario(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_tell_the_agent_on_a_cluster() {
    mentions_scenario(Nodes::cluster_with_archive(3, &[])).await;
}

/// A note mentioning an agent with no live socket reaches them through the signed push
/// webhook (`type: "mention"`, the agent named, the note's text), once; an agent who is
/// online gets the `mention` frame and no push; the end user gets no push for a note.
async fn mention_push_scenario(
    nodes: Nodes,
    hook: std::sync::Arc<std::sync::Mutex<Vec<chathub_e2e::Received>>>,
) {
    let ann_c = conv("ann");
    let ann = connect(&nodes, 0, Role::EndUser, "ann", Codec::Json).await;
    ann.send_text(None, "hello?", None, None).await.unwrap();
    // Bob signs in once (a known agent), then leaves.
    let bob = connect(&nodes, 1, Role::Agent, "bob", Codec::Json).await;
    drop(bob);
    let mut dan = connect(&nodes, 2, Role::Agent, "dan", Codec::Json).await;
    let alice = connect(&nodes, 0, Role::Agent, "alice", Codec::MsgPack).await;
    // Bob's session is gone once its presence lapses: wait until nobody sees him online.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Reply::Agents(list) = alice.request(Op::Agents {}).await.unwrap() else {
            panic!("an agents list")
        };
        let bob_online = list
            .agents
            .iter()
            .any(|a| a.agent == "bob" && a.presence != chathub_domain::Presence::Offline);
        if !bob_online {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob went offline: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let note = alice
        .send_note(&ann_c, &format!("{SECRET} @bob @dan please check"), None)
        .await
        .unwrap();
    // Dan is online: the frame, no push.
    let frames = drain(&mut dan, Duration::from_millis(500)).await;
    assert!(
        frames.iter().any(|f| matches!(f, ServerFrame::Mention(_))),
        "{frames:?}"
    );
    let id = format!("acme/{ann_c}/{}/bob", note.seq);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bodies: Vec<serde_json::Value> = hook
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.1).unwrap())
            .collect();
        if let Some(push) = bodies.iter().find(|b| b["id"] == id.as_str()) {
            assert_eq!(push["type"], "mention");
            assert_eq!(push["agent"], "bob");
            assert_eq!(push["author"]["id"], "alice");
            assert!(
                push["content"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("please check")
            );
            // Nobody else is pushed for the note: not dan (online), not ann.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let all: Vec<serde_json::Value> = hook
                .lock()
                .unwrap()
                .iter()
                .map(|r| serde_json::from_slice(&r.1).unwrap())
                .collect();
            let for_note: Vec<_> = all.iter().filter(|b| b["seq"] == note.seq).collect();
            assert!(
                for_note
                    .iter()
                    .all(|b| b["type"] == "mention" && b["agent"] == "bob"),
                "{for_note:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's push came: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_agents_get_a_mention_push_on_the_embedded_default() {
    let (url, hook) = webhook_receiver(0).await;
    let node = HubProcess::spawn(&[
        "--webhook-url",
        &url,
        "--webhook-secret",
        "webhook-secret-0123",
    ]);
    mention_push_scenario(
        Nodes {
            nodes: vec![node],
            archive_lags: false,
            keep: Vec::new(),
        },
        hook,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_agents_get_a_mention_push_on_a_cluster() {
    let (url, hook) = webhook_receiver(0).await;
    let (nodes, keep) = spawn_cluster_with_archive_and_s3(
        3,
        &[
            "--webhook-url",
            &url,
            "--webhook-secret",
            "webhook-secret-0123",
        ],
    );
    mention_push_scenario(
        Nodes {
            nodes,
            archive_lags: true,
            keep,
        },
        hook,
    )
    .await;
}
