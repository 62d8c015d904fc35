//! With a scanner hook, a file is `pending` (its sender may open it, nobody else) until
//! the scanner answers; the verdict is an `attachment_checked` event with its `seq`, so
//! live followers and resumes see the same; `blocked` files are never served, and a scan
//! the scanner could not answer is retried.

use chathub_client::Client;
use chathub_domain::{AttachmentStatus, EventBody, MessageContent, Role};
use chathub_e2e::{
    HubProcess, dev_token, full_history, http_bytes, link_of, path_of, read_http_request,
    send_attachment, upload_file,
};
use chathub_protocol::{ErrorCode, ServerFrame};
use chathub_testkit::fixtures::photo_with_location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "scanner-secret";

/// A scanner: answers 503 while `closed`; then fetches the file from the URL it was
/// given and answers `blocked` for files holding the EICAR test string, else `clean`.
/// Checks every request's signature.
async fn scanner(closed: Arc<AtomicBool>, asked: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/scan", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (closed, asked) = (closed.clone(), asked.clone());
            tokio::spawn(async move {
                let (headers, body) = read_http_request(&mut s).await;
                asked.fetch_add(1, Ordering::SeqCst);
                let signature = headers
                    .iter()
                    .find(|(k, _)| k == "x-chathub-signature")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                assert_eq!(
                    signature,
                    chathub_gateway::webhook::signature(SECRET, &body)
                );
                let answer = if closed.load(Ordering::SeqCst) {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let url = request["url"].as_str().unwrap();
                    let addr = url
                        .strip_prefix("http://")
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap();
                    let file =
                        http_bytes(addr.parse().unwrap(), "GET", &path_of(url), &[], &[]).await;
                    assert_eq!(file.0, 200, "the scanner can fetch a pending file");
                    assert_eq!(file.2.len() as u64, request["size"].as_u64().unwrap());
                    let eicar = file.2.windows(5).any(|w| w == b"EICAR");
                    let verdict = if eicar { "blocked" } else { "clean" };
                    let json = format!("{{\"verdict\":\"{verdict}\"}}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                        json.len()
                    )
                };
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

async fn connect(hub: &HubProcess, role: Role, who: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, who))
        .await
        .unwrap()
}

/// The next `attachment_checked` event on `client`.
async fn verdict_event(client: &mut Client) -> (u64, AttachmentStatus) {
    loop {
        let frame = client
            .next_event_within(Duration::from_secs(30))
            .await
            .expect("a verdict");
        if let ServerFrame::Event(e) = frame
            && let EventBody::AttachmentChecked { status, .. } = e.event.body
        {
            return (e.event.seq, status);
        }
    }
}

#[tokio::test]
async fn files_stay_pending_until_the_scanner_says_clean_and_blocked_ones_are_never_served() {
    let closed = Arc::new(AtomicBool::new(true));
    let asked = Arc::new(AtomicUsize::new(0));
    let url = scanner(closed.clone(), asked.clone()).await;
    let hub = HubProcess::spawn(&[
        "--attachment-scanner",
        &url,
        "--attachment-scanner-secret",
        SECRET,
        "--attachment-scan-retry-secs",
        "1",
    ]);
    let http = hub.http_addr;
    let ann = connect(&hub, Role::EndUser, "ann").await;
    let mut bob = connect(&hub, Role::Agent, "bob").await;
    bob.request(chathub_protocol::Op::Subscribe {
        conversation: Some(chathub_e2e::conv("ann")),
        since: None,
        history_id: None,
    })
    .await
    .unwrap();

    // The scanner is down: the photo is stored pending and sent as such.
    let card = upload_file(&ann, http, None, "coupon.jpg", &photo_with_location(), "m1").await;
    assert_eq!(card.status, AttachmentStatus::Pending);
    let sent = send_attachment(&ann, None, &card.id, None, "m1")
        .await
        .unwrap();
    // Its sender may open it; the agent may not yet.
    assert!(link_of(&ann, None, &card.id).await.is_ok());
    let err = link_of(&bob, Some("ann"), &card.id).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::InvalidState);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "the scanner was asked (and failed)"
    );

    // The scanner comes back: the retry gets `clean`, as an event after the message.
    closed.store(false, Ordering::SeqCst);
    let (seq, status) = verdict_event(&mut bob).await;
    assert_eq!(status, AttachmentStatus::Clean);
    assert!(seq > sent.seq);
    let link = link_of(&bob, Some("ann"), &card.id).await.unwrap();
    assert_eq!(link.attachment.status, AttachmentStatus::Clean);
    assert_eq!(
        http_bytes(http, "GET", &path_of(&link.url), &[], &[])
            .await
            .0,
        200
    );

    // A file the scanner blocks (the scanner held back until it is sent, so that the
    // send meets it pending): the sender's own link stops working too.
    closed.store(true, Ordering::SeqCst);
    let mut bad = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_vec();
    bad.extend_from_slice(b"\nnotes\n");
    let bad_card = upload_file(&ann, http, None, "notes.txt", &bad, "m2").await;
    let early = link_of(&ann, None, &bad_card.id).await.unwrap();
    send_attachment(&ann, None, &bad_card.id, None, "m2")
        .await
        .unwrap();
    closed.store(false, Ordering::SeqCst);
    let (_, status) = verdict_event(&mut bob).await;
    assert_eq!(status, AttachmentStatus::Blocked);
    let err = link_of(&ann, None, &bad_card.id).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Blocked);
    let answer = http_bytes(http, "GET", &path_of(&early.url), &[], &[]).await;
    assert_eq!(
        answer.0, 403,
        "a blocked file is never served, even on an earlier link"
    );
    // Nor sent again.
    let card3 = upload_file(&ann, http, None, "notes.txt", &bad, "m2").await;
    assert_eq!(card3.status, AttachmentStatus::Blocked);
    let err = send_attachment(&ann, None, &card3.id, None, "m3")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Blocked);

    // A resume from the start sees the same: each message, then its verdict.
    let history = full_history(&ann, "ann").await;
    let story: Vec<String> = history
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Message {
                content: MessageContent::Attachment { attachment },
                ..
            } => Some(format!("sent {} {:?}", attachment.name, attachment.status)),
            EventBody::AttachmentChecked { status, .. } => Some(format!("checked {status:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        [
            "sent coupon.jpg Pending",
            "checked Clean",
            "sent notes.txt Pending",
            "checked Blocked"
        ]
    );
    // The transcript shows each file's final standing.
    let reply = ann
        .request(chathub_protocol::Op::Transcript {
            conversation: None,
            format: None,
        })
        .await
        .unwrap();
    let chathub_protocol::Reply::Transcript(t) = reply else {
        panic!("{reply:?}")
    };
    let statuses: Vec<_> = t
        .messages
        .iter()
        .filter_map(|m| m.attachment.as_ref().map(|a| a.status))
        .collect();
    assert_eq!(
        statuses,
        [AttachmentStatus::Clean, AttachmentStatus::Blocked]
    );
}
