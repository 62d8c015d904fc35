//! Edit, unsend and redact: each is a new event about an earlier message, and every
//! reader converges on one view. Ann (an end user) and alice (an agent) follow ann's
//! conversation live on different nodes while ann edits a message twice, alice edits
//! hers, ann unsends one and an admin redacts one that held a card number. Then:
//! - for both audiences, the live view, a fresh reader's history (paged) and a client
//!   that resumes from before the edits (`subscribe` with `since`) are the same list
//!   of events once each applies the amendments it gets (the rule of PROTOCOL.md: an
//!   amendment applies when its `seq` is above the message's `amended.seq`);
//! - history shows each message in its current form; the removed ones are tombstones,
//!   and the card number is nowhere: not in history, transcripts, search, the export;
//! - the rules: only the author edits or unsends, only within the tenant's edit window
//!   (set to 0: none), only admins redact, a removed message stays removed, a note or a
//!   status change is no message to amend.
//!
//! On the embedded default and on three nodes over a 3-master Redis Cluster with the
//! PostgreSQL archive (search reads the archive there: the rewrite reached it).

use chathub_client::{Client, ClientOptions};
use chathub_domain::conversation::amend;
use chathub_domain::{ChangeKind, Event, EventBody, MessageContent, Role};
use chathub_e2e::{
    Nodes, conv, dev_token, drain, full_history, http_get_as, http_request, search_op,
};
use chathub_protocol::{Codec, ErrorCode, Op, Reply, ServerFrame};
use std::time::Duration;

/// The card number ann sent by mistake: finding it anywhere after the redaction is a
/// leak.
const CARD: &str = "4111-1111-1111-1111";

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str, codec: Codec) -> Client {
    let options = ClientOptions {
        codec,
        ..ClientOptions::default()
    };
    Client::connect_with(nodes.ws(i), &dev_token("acme", role, who), options)
        .await
        .unwrap()
}

/// A client's view after `events` arrive, in order: each appended, each amendment
/// folded into its message (and a removal's earlier edits scrubbed), as PROTOCOL.md
/// tells clients to.
fn apply(view: &mut Vec<Event>, events: impl IntoIterator<Item = Event>) {
    for event in events {
        if view.iter().any(|e| e.seq == event.seq) {
            continue;
        }
        amend::fold_into(view.iter_mut(), &event);
        view.push(event);
    }
}

fn events_of(frames: Vec<ServerFrame>) -> Vec<Event> {
    frames
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Event(e) => Some(e.event),
            _ => None,
        })
        .collect()
}

async fn amend_op(client: &Client, op: Op) -> Result<u64, ErrorCode> {
    match client.request(op).await {
        Ok(Reply::Edit(ack) | Reply::Unsend(ack) | Reply::Redact(ack)) => Ok(ack.seq),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e.server().map(|e| e.code).unwrap_or(ErrorCode::Internal)),
    }
}

fn edit(seq: u64, text: &str) -> Op {
    Op::Edit {
        conversation: Some(conv("ann")),
        seq,
        text: text.into(),
    }
}

fn unsend(seq: u64) -> Op {
    Op::Unsend {
        conversation: Some(conv("ann")),
        seq,
    }
}

fn message_text(view: &[Event], seq: u64) -> Option<(String, Option<ChangeKind>)> {
    view.iter()
        .find(|e| e.seq == seq)
        .and_then(|e| match &e.body {
            EventBody::Message { content, .. } => Some((
                match content {
                    MessageContent::Text { text } => text.clone(),
                    MessageContent::Removed {} => "<removed>".into(),
                    other => format!("{other:?}"),
                },
                e.amended.as_ref().map(|a| a.change),
            )),
            _ => None,
        })
}

async fn scenario(nodes: Nodes) {
    let admin_token = dev_token("acme", Role::Admin, "carol");
    let ann_c = conv("ann");
    let mut ann = connect(&nodes, 0, Role::EndUser, "ann", Codec::MsgPack).await;
    let mut alice = connect(&nodes, 1, Role::Agent, "alice", Codec::Json).await;
    let carol = connect(&nodes, 2, Role::Admin, "carol", Codec::Json).await;
    ann.subscribe(None, None).await.unwrap();

    let m1 = ann.send_text(None, "helo", None, None).await.unwrap().seq;
    alice.subscribe(Some(&ann_c), None).await.unwrap();
    let a1 = alice
        .send_text(Some(&ann_c), "Hi ann", Some(0), None)
        .await
        .unwrap();
    let m2 = ann
        .send_text(None, &format!("my card is {CARD}"), None, None)
        .await
        .unwrap()
        .seq;
    let m3 = ann
        .send_text(None, "oops, wrong chat", None, None)
        .await
        .unwrap()
        .seq;
    let note = alice
        .send_note(&ann_c, "a private note", None)
        .await
        .unwrap()
        .seq;

    // The views so far, and the point a resuming client comes back from.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ann_live = Vec::new();
    apply(
        &mut ann_live,
        events_of(drain(&mut ann, Duration::from_millis(300)).await),
    );
    let mut alice_live = Vec::new();
    apply(&mut alice_live, full_history(&alice, "ann").await);
    drain(&mut alice, Duration::from_millis(100)).await;
    let ann_before = ann_live.clone();
    let alice_before = alice_live.clone();
    let resume_from = note;

    // The rules.
    assert_eq!(
        amend_op(&alice, edit(m1, "hijacked")).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        amend_op(&alice, unsend(m1)).await,
        Err(ErrorCode::Forbidden)
    );
    let redact_by_user = Op::Redact {
        conversation: None,
        seq: m1,
        reason: "mine".into(),
    };
    assert_eq!(
        amend_op(&ann, redact_by_user).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        amend_op(&alice, edit(note, "notes stay")).await,
        Err(ErrorCode::InvalidState)
    );
    // Seq 1 is the status change that opened the conversation.
    assert_eq!(
        amend_op(&ann, edit(1, "status")).await,
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        amend_op(&ann, edit(999, "nothing")).await,
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        amend_op(&ann, edit(m1, "  ")).await,
        Err(ErrorCode::BadRequest)
    );
    let no_reason = Op::Redact {
        conversation: Some(ann_c.clone()),
        seq: m2,
        reason: String::new(),
    };
    assert_eq!(
        amend_op(&carol, no_reason).await,
        Err(ErrorCode::BadRequest)
    );

    // The amendments, from three nodes.
    let e1 = amend_op(&ann, edit(m1, "hello")).await.unwrap();
    let e2 = amend_op(&ann, edit(m1, "hello there")).await.unwrap();
    let e3 = amend_op(&alice, edit(a1.seq, "Hi ann, how can I help?"))
        .await
        .unwrap();
    let u1 = amend_op(&ann, unsend(m3)).await.unwrap();
    let redact = Op::Redact {
        conversation: Some(ann_c.clone()),
        seq: m2,
        reason: "card number".into(),
    };
    let r1 = amend_op(&carol, redact).await.unwrap();
    assert!(e1 < e2 && e2 < e3 && e3 < u1 && u1 < r1);
    // Removed stays removed.
    assert_eq!(
        amend_op(&ann, edit(m3, "back")).await,
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        amend_op(&ann, unsend(m2)).await,
        Err(ErrorCode::InvalidState)
    );

    // No edit window: nothing more is edited.
    let (status, body) = http_request(
        nodes.http(0),
        "PUT",
        "/admin/v1/settings",
        &admin_token,
        r#"{"edit_window_secs": 0}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""edit_window_secs":0"#), "{body}");
    assert_eq!(
        amend_op(&ann, edit(m1, "late")).await,
        Err(ErrorCode::InvalidState)
    );
    let (status, body) = http_request(
        nodes.http(1),
        "PUT",
        "/admin/v1/settings",
        &admin_token,
        r#"{"edit_window_secs": 100000}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Live views.
    tokio::time::sleep(Duration::from_millis(300)).await;
    apply(
        &mut ann_live,
        events_of(drain(&mut ann, Duration::from_millis(300)).await),
    );
    apply(
        &mut alice_live,
        events_of(drain(&mut alice, Duration::from_millis(300)).await),
    );

    // Resumed from before the edits, on another node.
    let ann_again = connect(&nodes, 2, Role::EndUser, "ann", Codec::Json).await;
    let mut ann_resumed = ann_before.clone();
    let mut ann_again = ann_again;
    ann_again.subscribe(None, Some(resume_from)).await.unwrap();
    apply(
        &mut ann_resumed,
        events_of(drain(&mut ann_again, Duration::from_millis(400)).await),
    );
    let mut alice_again = connect(&nodes, 0, Role::Agent, "alice", Codec::MsgPack).await;
    let mut alice_resumed = alice_before.clone();
    alice_again
        .subscribe(Some(&ann_c), Some(resume_from))
        .await
        .unwrap();
    apply(
        &mut alice_resumed,
        events_of(drain(&mut alice_again, Duration::from_millis(400)).await),
    );

    // Fresh readers: history as it is now (each message folded already).
    let mut ann_fresh = Vec::new();
    apply(&mut ann_fresh, full_history(&ann_again, "ann").await);
    let mut alice_fresh = Vec::new();
    apply(&mut alice_fresh, full_history(&alice_again, "ann").await);

    assert_eq!(ann_live, ann_resumed, "ann: live and resumed");
    assert_eq!(ann_live, ann_fresh, "ann: live and fresh history");
    assert_eq!(alice_live, alice_resumed, "alice: live and resumed");
    assert_eq!(alice_live, alice_fresh, "alice: live and fresh history");
    assert!(
        !ann_live
            .iter()
            .any(|e| matches!(e.body, EventBody::Note { .. })),
        "ann never sees the note"
    );

    // The current forms.
    for view in [&ann_fresh, &alice_fresh] {
        assert_eq!(
            message_text(view, m1),
            Some(("hello there".into(), Some(ChangeKind::Edited)))
        );
        assert_eq!(
            message_text(view, a1.seq),
            Some(("Hi ann, how can I help?".into(), Some(ChangeKind::Edited)))
        );
        assert_eq!(
            message_text(view, m2),
            Some(("<removed>".into(), Some(ChangeKind::Redacted)))
        );
        assert_eq!(
            message_text(view, m3),
            Some(("<removed>".into(), Some(ChangeKind::Unsent)))
        );
        let redacted = view.iter().find(|e| e.seq == m2).unwrap();
        let how = redacted.amended.as_ref().unwrap();
        assert_eq!((how.seq, how.by.id.as_str()), (r1, "carol"));
        assert_eq!(how.reason.as_deref(), Some("card number"));
    }

    // The card number is gone from what anyone reads.
    let history = serde_json::to_string(&alice_fresh).unwrap();
    assert!(!history.contains(CARD), "{history}");
    for format in ["json", "text", "html"] {
        let path = format!("/admin/v1/conversations/ann/transcript?format={format}");
        let (status, body) = http_get_as(nodes.http(1), &admin_token, &path).await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains(CARD), "transcript {format}: {body}");
        assert!(body.contains("hello there"), "transcript {format}: {body}");
        if format == "text" {
            assert!(body.contains("(message redacted by"), "{body}");
            assert!(body.contains("(message unsent)"), "{body}");
            assert!(body.contains("hello there (edited)"), "{body}");
        }
    }
    let (status, body) =
        http_get_as(nodes.http(0), &admin_token, "/admin/v1/users/ann/export").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(CARD), "export: {body}");

    // Search (the archive, on the cluster) finds the current text and not the removed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Reply::Search(edited) = alice.request(search_op("there")).await.unwrap() else {
            panic!("a search page")
        };
        let Reply::Search(card) = alice.request(search_op("4111")).await.unwrap() else {
            panic!("a search page")
        };
        let Reply::Search(old) = alice.request(search_op("helo")).await.unwrap() else {
            panic!("a search page")
        };
        let Reply::Search(wrong) = alice.request(search_op("wrong")).await.unwrap() else {
            panic!("a search page")
        };
        let settled = edited.hits.iter().any(|h| h.seq == m1)
            && card.hits.is_empty()
            && old.hits.is_empty()
            && wrong.hits.is_empty();
        if settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "search: {edited:?} {card:?} {old:?} {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The redaction is in the audit log with its reason.
    let (status, body) = http_get_as(nodes.http(2), &admin_token, "/admin/v1/audit").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("message_redacted") && body.contains("card number"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_converge_on_the_embedded_default() {
    scenario(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_converge_on_a_cluster() {
    scenario(Nodes::cluster_with_archive(3, &[])).await;
}
