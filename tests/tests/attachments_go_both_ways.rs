//! Attachments end to end on the embedded default (a real `chathub` process, real
//! sockets, real HTTP): an end user's photo reaches the agent without its location, the
//! agent's PDF reaches the end user, an upload cut off by the network resumes, five
//! retries make one message and one stored object, links are for participants only,
//! and everything is still there after a restart.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_domain::{EventBody, MessageContent};
use chathub_e2e::{
    HubProcess, ask_upload, dev_token, header_of, http_bytes, http_put_cut_off, link_of, path_of,
    send_attachment, upload_file,
};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};
use chathub_testkit::fixtures::{PHOTO_PLACE, pdf, photo_with_location};
use std::time::Duration;

async fn connect(hub: &HubProcess, tenant: &str, role: Role, who: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token(tenant, role, who))
        .await
        .unwrap()
}

/// Files stored under the hub's attachments directory for one conversation.
fn stored_objects(hub: &HubProcess, conversation: &str) -> Vec<String> {
    let dir = hub
        .data
        .as_ref()
        .unwrap()
        .path()
        .join("attachments/t-acme")
        .join(format!("c-{conversation}"));
    let mut found = Vec::new();
    for a in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            found.push(format!(
                "{}/{}",
                a.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    found.sort();
    found
}

async fn attachment_event(client: &mut Client) -> (u64, chathub_domain::AttachmentCard) {
    loop {
        let frame = client
            .next_event_within(Duration::from_secs(5))
            .await
            .expect("an event");
        if let ServerFrame::Event(e) = frame
            && let EventBody::Message {
                content: MessageContent::Attachment { attachment },
                ..
            } = e.event.body
        {
            return (e.event.seq, attachment);
        }
    }
}

async fn subscribe(client: &Client, conversation: Option<&str>) {
    client
        .request(Op::Subscribe {
            conversation: conversation.map(chathub_e2e::conv),
            since: None,
            history_id: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_photo_and_a_pdf_go_both_ways_and_survive_a_restart() {
    let mut hub = HubProcess::spawn(&[]);
    let http = hub.http_addr;
    let ann = connect(&hub, "acme", Role::EndUser, "ann").await;
    let mut bob = connect(&hub, "acme", Role::Agent, "bob").await;
    subscribe(&ann, None).await;
    subscribe(&bob, Some("ann")).await;

    // Ann's phone asks for an upload and loses the network half-way through the photo.
    let photo = photo_with_location();
    let first = ask_upload(&ann, None, "coupon.jpg", photo.len(), "m1").await;
    let url = first.upload_url.clone().unwrap();
    assert_eq!(first.received, 0);
    let half = photo.len() / 2;
    http_put_cut_off(http, &path_of(&url), &photo[..half], photo.len() - half).await;
    // It asks again (same message, same attachment) and learns how much arrived.
    let again = ask_upload(&ann, None, "coupon.jpg", photo.len(), "m1").await;
    assert_eq!(again.attachment, first.attachment);
    let head = http_bytes(
        http,
        "HEAD",
        &path_of(&again.upload_url.clone().unwrap()),
        &[],
        &[],
    )
    .await;
    let offset: usize = header_of(&head, "upload-offset").unwrap().parse().unwrap();
    assert_eq!(offset, again.received as usize);
    assert!(offset > 0 && offset <= half, "staged {offset} of {half}");
    // The rest, as a range.
    let range = format!("bytes {offset}-{}/{}", photo.len() - 1, photo.len());
    let done = http_bytes(
        http,
        "PUT",
        &path_of(&again.upload_url.unwrap()),
        &[("Content-Range", &range)],
        &photo[offset..],
    )
    .await;
    assert_eq!(done.0, 201, "{}", String::from_utf8_lossy(&done.2));

    // The send is retried five times (acks lost): one message.
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(
            send_attachment(&ann, None, &first.attachment, None, "m1")
                .await
                .unwrap()
                .seq,
        );
    }
    seqs.dedup();
    assert_eq!(seqs.len(), 1, "one message for five retries");
    let (seq, card) = attachment_event(&mut bob).await;
    assert_eq!(seq, seqs[0]);
    assert_eq!(card.content_type, "image/jpeg");
    assert_eq!((card.width, card.height), (Some(48), Some(64)));
    assert!(card.thumbnail);

    // Bob downloads it: the place is gone, ranges work, the thumbnail is a JPEG.
    let link = link_of(&bob, Some("ann"), &card.id).await.unwrap();
    let file = http_bytes(http, "GET", &path_of(&link.url), &[], &[]).await;
    assert_eq!(file.0, 200);
    assert_eq!(header_of(&file, "content-type"), Some("image/jpeg"));
    assert_eq!(header_of(&file, "x-content-type-options"), Some("nosniff"));
    assert_eq!(file.2.len() as u64, card.size);
    assert!(!file.2.windows(PHOTO_PLACE.len()).any(|w| w == PHOTO_PLACE));
    let part = http_bytes(
        http,
        "GET",
        &path_of(&link.url),
        &[("Range", "bytes=0-99")],
        &[],
    )
    .await;
    assert_eq!(part.0, 206);
    assert_eq!(part.2, file.2[..100]);
    assert_eq!(
        header_of(&part, "content-range"),
        Some(format!("bytes 0-99/{}", card.size).as_str())
    );
    let thumb = http_bytes(
        http,
        "GET",
        &path_of(&link.thumbnail_url.unwrap()),
        &[],
        &[],
    )
    .await;
    assert_eq!(thumb.0, 200);
    assert_eq!(&thumb.2[..2], &[0xFF, 0xD8]);

    // Bob answers with a PDF: an agent's attachment takes the conversation.
    let receipt = pdf(300_000);
    let bob_card = upload_file(&bob, http, Some("ann"), "receipt.pdf", &receipt, "b1").await;
    assert_eq!(bob_card.content_type, "application/pdf");
    let ack = send_attachment(&bob, Some("ann"), &bob_card.id, Some(0), "b1")
        .await
        .unwrap();
    assert!(ack.seq > seq);
    let mut ann = ann;
    let got = loop {
        // Ann hears of her own photo first.
        let (_, got) = attachment_event(&mut ann).await;
        if got.id == bob_card.id {
            break got;
        }
    };
    let link = link_of(&ann, None, &got.id).await.unwrap();
    let file = http_bytes(http, "GET", &path_of(&link.url), &[], &[]).await;
    assert_eq!(file.2, receipt);
    assert!(
        header_of(&file, "content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    let open = ann.request(Op::Open { conversation: None }).await.unwrap();
    let Reply::Open(open) = open else {
        panic!("{open:?}")
    };
    assert_eq!(
        open.view.state.owner.as_ref().map(|o| o.as_str()),
        Some("bob")
    );

    // One stored object per file, whatever the retries.
    let objects = stored_objects(&hub, "ann");
    let files = objects.iter().filter(|o| o.ends_with("/file")).count();
    assert_eq!(files, 2, "{objects:?}");

    // Survives a restart of the node (same data directory).
    let data = hub.data.take().unwrap();
    hub.terminate();
    let _ = hub.child.wait();
    let hub = HubProcess::spawn(&["--data-dir", data.path().to_str().unwrap()]);
    let ann = connect(&hub, "acme", Role::EndUser, "ann").await;
    let history = chathub_e2e::full_history(&ann, "ann").await;
    let cards = chathub_e2e::attachment_cards(&history);
    assert_eq!(cards.len(), 2);
    let link = link_of(&ann, None, &cards[0].id).await.unwrap();
    let file = http_bytes(hub.http_addr, "GET", &path_of(&link.url), &[], &[]).await;
    assert_eq!(file.0, 200);
    assert_eq!(file.2.len() as u64, cards[0].size);
    drop(data);
}

#[tokio::test]
async fn links_are_for_the_participants_only() {
    let hub = HubProcess::spawn(&[]);
    let http = hub.http_addr;
    let ann = connect(&hub, "acme", Role::EndUser, "ann").await;
    let card = upload_file(&ann, http, None, "scan.pdf", &pdf(5000), "s1").await;
    send_attachment(&ann, None, &card.id, None, "s1")
        .await
        .unwrap();

    // Another end user of the tenant: not their conversation.
    let carl = connect(&hub, "acme", Role::EndUser, "carl").await;
    let err = link_of(&carl, Some("ann"), &card.id).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    let err = link_of(&carl, None, &card.id).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    // An agent of another tenant.
    let zed = connect(&hub, "other", Role::Agent, "zed").await;
    let err = link_of(&zed, Some("ann"), &card.id).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    // Nobody sends someone else's upload as their own.
    let err = send_attachment(&carl, None, &card.id, None, "c1")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    let bob = connect(&hub, "acme", Role::Agent, "bob").await;
    let err = send_attachment(&bob, Some("ann"), &card.id, Some(1), "b1")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);

    // A link is for one attachment and one variant, and cannot be forged.
    let link = link_of(&bob, Some("ann"), &card.id).await.unwrap();
    let path = path_of(&link.url);
    let ok = http_bytes(http, "GET", &path, &[], &[]).await;
    assert_eq!(ok.0, 200);
    let other_id = path.replace(card.id.as_str(), "0123456789abcdef0123456789abcdef");
    assert_eq!(http_bytes(http, "GET", &other_id, &[], &[]).await.0, 403);
    let as_thumbnail = path.replace("?t=", "/thumbnail?t=");
    assert_eq!(
        http_bytes(http, "GET", &as_thumbnail, &[], &[]).await.0,
        403
    );
    let forged = format!("{}x", &path[..path.len() - 1]);
    assert_eq!(http_bytes(http, "GET", &forged, &[], &[]).await.0, 403);
    let no_ticket = path.split('?').next().unwrap().to_owned();
    assert_eq!(http_bytes(http, "GET", &no_ticket, &[], &[]).await.0, 400);
    // An upload ticket is no download ticket.
    let up = ask_upload(&ann, None, "more.pdf", 10, "s2").await;
    let up_path = path_of(&up.upload_url.unwrap());
    let token = up_path.split("?t=").nth(1).unwrap();
    let as_download = format!("/attachments/v1/files/{}?t={token}", up.attachment.as_str());
    assert_eq!(http_bytes(http, "GET", &as_download, &[], &[]).await.0, 403);
}
