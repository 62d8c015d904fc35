//! Attachments on an S3-compatible store (moto's server, a real S3 protocol endpoint):
//! on the embedded default, and in cluster mode where the node that took the upload is
//! killed and another serves the file.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    HubProcess, dev_token, full_history, http_bytes, link_of, path_of, send_attachment, upload_file,
};
use chathub_testkit::fixtures::{PHOTO_PLACE, pdf, photo_with_location};
use chathub_testkit::{RedisServer, S3_KEY, S3Server};

fn s3_args(bucket: &str, endpoint: &str) -> Vec<String> {
    vec![
        "--attachments".into(),
        format!("s3://{bucket}"),
        "--s3-endpoint".into(),
        endpoint.into(),
        "--s3-access-key-id".into(),
        S3_KEY.0.into(),
        "--s3-secret-access-key".into(),
        S3_KEY.1.into(),
    ]
}

async fn connect(ws: &str, role: Role, who: &str) -> Client {
    Client::connect(ws, &dev_token("acme", role, who))
        .await
        .unwrap()
}

#[tokio::test]
async fn files_live_in_the_bucket() {
    let s3 = S3Server::start();
    s3.create_bucket("chathub-files");
    let endpoint = s3.endpoint();
    let args = s3_args("chathub-files", &endpoint);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hub = HubProcess::spawn(&args);
    let ann = connect(&hub.ws_url, Role::EndUser, "ann").await;
    let photo = photo_with_location();
    let card = upload_file(&ann, hub.http_addr, None, "coupon.jpg", &photo, "m1").await;
    assert!(card.thumbnail);
    // Two parts of 8 MiB, straight to the bucket: the reply has presigned part URLs (on
    // the S3 server's port), no upload URL on the node.
    let big = pdf(9 * 1024 * 1024 + 123);
    let up = chathub_e2e::ask_upload(&ann, None, "statement.pdf", big.len(), "m2").await;
    assert!(up.upload_url.is_none());
    assert_eq!(up.parts.len(), 2);
    for part in &up.parts {
        assert!(
            part.url.contains(&format!("127.0.0.1:{}", s3.port)),
            "{}",
            part.url
        );
        assert!(part.url.contains("uploadId="));
    }
    // A phone asking again (same message) gets the same multipart upload.
    let again = chathub_e2e::ask_upload(&ann, None, "statement.pdf", big.len(), "m2").await;
    let upload_id = |p: &chathub_protocol::UploadPart| {
        p.url
            .split("uploadId=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    };
    let shape = |r: &chathub_protocol::UploadReply| {
        r.parts
            .iter()
            .map(|p| (p.number, p.offset, p.size, upload_id(p)))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&again), shape(&up));
    // Completing with a wrong ETag is refused; the right ones store the file.
    let wrong = serde_json::to_vec(&serde_json::json!({"parts": [{"number": 1, "etag": "\"nope\""}, {"number": 2, "etag": "\"nope\""}]})).unwrap();
    let complete = chathub_e2e::path_of(up.complete_url.as_deref().unwrap());
    let refused = http_bytes(
        hub.http_addr,
        "POST",
        &complete,
        &[("Content-Type", "application/json")],
        &wrong,
    )
    .await;
    assert_eq!(refused.0, 400, "{}", String::from_utf8_lossy(&refused.2));
    let big_card = chathub_e2e::upload_direct(hub.http_addr, &again, &big).await;
    send_attachment(&ann, None, &card.id, None, "m1")
        .await
        .unwrap();
    send_attachment(&ann, None, &big_card.id, None, "m2")
        .await
        .unwrap();

    let keys = s3.keys("chathub-files");
    for id in [&card.id, &big_card.id] {
        for leaf in ["file", "meta.json"] {
            let key = format!("t-acme/c-ann/a-{}/{leaf}", id.as_str());
            assert!(keys.contains(&key), "{key} not in {keys:?}");
        }
    }
    let bob = connect(&hub.ws_url, Role::Agent, "bob").await;
    let link = link_of(&bob, Some("ann"), &card.id).await.unwrap();
    let got = http_bytes(hub.http_addr, "GET", &path_of(&link.url), &[], &[]).await;
    assert_eq!(got.0, 200);
    assert!(!got.2.windows(PHOTO_PLACE.len()).any(|w| w == PHOTO_PLACE));
    let link = link_of(&bob, Some("ann"), &big_card.id).await.unwrap();
    let got = http_bytes(hub.http_addr, "GET", &path_of(&link.url), &[], &[]).await;
    assert_eq!(got.2, big);
    let part = http_bytes(
        hub.http_addr,
        "GET",
        &path_of(&link.url),
        &[("Range", "bytes=8388600-8388619")],
        &[],
    )
    .await;
    assert_eq!(part.0, 206, "a range across the two parts");
    assert_eq!(part.2, big[8_388_600..8_388_620]);
}

#[tokio::test]
async fn a_killed_node_loses_no_attachment() {
    let s3 = S3Server::start();
    s3.create_bucket("chathub-cluster");
    let redis = RedisServer::start();
    let endpoint = s3.endpoint();
    let args = s3_args("chathub-cluster", &endpoint);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Uploads through the nodes here (the other test covers direct ones).
    let mut args = args;
    args.extend(["--s3-direct-uploads", "false"]);
    let mut first = HubProcess::spawn_redis(&redis.url(), &args);
    let second = HubProcess::spawn_redis(&redis.url(), &args);

    // The end user sends a photo through the first node; the agent answers with a PDF
    // through the second.
    let ann = connect(&first.ws_url, Role::EndUser, "ann").await;
    let photo = photo_with_location();
    let card = upload_file(&ann, first.http_addr, None, "coupon.jpg", &photo, "m1").await;
    send_attachment(&ann, None, &card.id, None, "m1")
        .await
        .unwrap();
    let bob = connect(&second.ws_url, Role::Agent, "bob").await;
    let receipt = pdf(200_000);
    let bob_card = upload_file(
        &bob,
        second.http_addr,
        Some("ann"),
        "receipt.pdf",
        &receipt,
        "b1",
    )
    .await;
    send_attachment(&bob, Some("ann"), &bob_card.id, Some(0), "b1")
        .await
        .unwrap();

    // The first node dies; the end user comes back on the second.
    first.kill9();
    let ann = connect(&second.ws_url, Role::EndUser, "ann").await;
    let history = full_history(&ann, "ann").await;
    let cards = chathub_e2e::attachment_cards(&history);
    assert_eq!(cards, vec![card.clone(), bob_card.clone()]);
    for (c, expected) in [(&card, None), (&bob_card, Some(&receipt))] {
        let link = link_of(&ann, None, &c.id).await.unwrap();
        let got = http_bytes(second.http_addr, "GET", &path_of(&link.url), &[], &[]).await;
        assert_eq!(got.0, 200);
        assert_eq!(got.2.len() as u64, c.size);
        if let Some(bytes) = expected {
            assert_eq!(&got.2, bytes);
        }
    }
}
