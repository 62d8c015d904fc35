//! Transcripts: an end user gets their own over the socket, an agent any of the tenant's,
//! the admin API serves JSON, text and HTML; every message, the ownership timeline (taken,
//! taken over, finished) and the engagements redeemed are in it; another end user's is
//! `forbidden`; HTML escapes what users wrote. On the embedded default and in cluster mode
//! with an archive alike.

use chathub_client::Client;
use chathub_domain::{Cause, ConversationId, Role};
use chathub_e2e::{HubProcess, dev_token, http_request};
use chathub_protocol::{ErrorCode, Op, Reply, TranscriptReply};

async fn connect(hub: &HubProcess, role: Role, subject: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, subject))
        .await
        .expect("connects")
}

fn transcript(conversation: Option<&str>, format: Option<&str>) -> Op {
    Op::Transcript {
        conversation: conversation.map(|c| ConversationId::new(c).expect("id")),
        format: format.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_over_the_socket_and_the_admin_api() {
    transcripts_on(&HubProcess::spawn(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_in_cluster_mode_with_an_archive() {
    let archived = chathub_e2e::ArchivedCluster::start(1);
    transcripts_on(&archived.nodes[0]).await;
}

async fn transcripts_on(hub: &HubProcess) {
    let ann = connect(hub, Role::EndUser, "ann").await;
    ann.send_text(None, "My coupon <b>fails</b> & I'm upset", None, None)
        .await
        .expect("sent");
    let c = ConversationId::new("ann").expect("id");
    let alice = connect(hub, Role::Agent, "alice").await;
    let took = alice
        .send_text(Some(&c), "Let me look", Some(0), None)
        .await
        .expect("alice takes");
    let bob = connect(hub, Role::Agent, "bob").await;
    let over = bob
        .send_text(Some(&c), "Bob here, taking over", Some(took.epoch), None)
        .await
        .expect("bob takes over");
    let finished = bob
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(over.epoch),
        })
        .await;
    assert!(finished.is_ok(), "{finished:?}");
    // A redemption recorded by the brand's backend shows up too.
    let admin = dev_token("acme", Role::Admin, "root");
    let (status, body) = http_request(
        hub.http_addr,
        "POST",
        "/admin/v1/users/ann/history",
        &admin,
        r#"{"type":"coupon","action":"redeemed","title":"10% off","engagement":"c10"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let Ok(Reply::Transcript(own)) = ann.request(transcript(None, Some("text"))).await else {
        panic!("the end user gets their transcript")
    };
    assert!(own.complete);
    let texts: Vec<&str> = own.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "My coupon <b>fails</b> & I'm upset",
            "Let me look",
            "Bob here, taking over"
        ]
    );
    let causes: Vec<Cause> = own.timeline.iter().map(|t| t.cause).collect();
    assert_eq!(
        causes,
        [
            Cause::Opened,
            Cause::Taken,
            Cause::TakenOver,
            Cause::Finished
        ]
    );
    assert_eq!(
        own.timeline[2].previous_owner.as_ref().map(|a| a.as_str()),
        Some("alice")
    );
    assert_eq!(own.engagements.len(), 1);
    assert_eq!(own.engagements[0].action, "redeemed");
    let text = own.rendered.expect("text asked for");
    assert!(
        text.contains("ann (end user): My coupon <b>fails</b>"),
        "{text}"
    );
    assert!(text.contains("taken over by bob from alice"), "{text}");
    assert!(text.contains("redeemed \"10% off\""), "{text}");

    // An agent names the conversation; another end user may not.
    let Ok(Reply::Transcript(agents)) = alice.request(transcript(Some("ann"), None)).await else {
        panic!("an agent gets it")
    };
    assert_eq!(agents.messages.len(), 3);
    assert_eq!(agents.rendered, None);
    let eve = connect(hub, Role::EndUser, "eve").await;
    let refused = eve
        .request(transcript(Some("ann"), None))
        .await
        .expect_err("refused");
    assert_eq!(refused.server().map(|e| e.code), Some(ErrorCode::Forbidden));
    let bad = alice
        .request(transcript(Some("ann"), Some("pdf")))
        .await
        .expect_err("refused");
    assert_eq!(bad.server().map(|e| e.code), Some(ErrorCode::BadRequest));

    // The admin API: JSON, text, HTML (escaped).
    let path = "/admin/v1/conversations/ann/transcript";
    let (status, body) = http_request(hub.http_addr, "GET", path, &admin, "").await;
    assert_eq!(status, 200, "{body}");
    let json: TranscriptReply = serde_json::from_str(&body).expect("a transcript");
    assert_eq!(json.messages, agents.messages);
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        &format!("{path}?format=html"),
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<!doctype html>"));
    assert!(
        body.contains("My coupon &lt;b&gt;fails&lt;/b&gt; &amp; I&#39;m upset"),
        "{body}"
    );
    assert!(!body.contains("<b>fails"), "{body}");
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        &format!("{path}?format=text"),
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Transcript of conversation ann"), "{body}");
    let eve_token = dev_token("acme", Role::EndUser, "eve");
    let (status, _) = http_request(hub.http_addr, "GET", path, &eve_token, "").await;
    assert_eq!(status, 403);
}
