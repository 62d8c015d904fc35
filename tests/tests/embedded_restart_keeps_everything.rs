//! `chathub serve` (the embedded default) keeps its data in its data directory: killed
//! with `kill -9` while messages flow and started again on the same directory, it has
//! every acknowledged message exactly once, the conversation's owner, epoch and `seq`,
//! read marks, the queue, canned responses and settings, and the same `history_id`, so
//! a client resumes from its last `seq` with no gap and no `history_lost`.

use chathub_client::Client;
use chathub_domain::{ConversationId, Role, Status};
use chathub_e2e::{HubProcess, assert_each_once, dev_token, full_history, http_request};
use chathub_protocol::{Op, Reply};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn conv(id: &str) -> ConversationId {
    ConversationId::new(id).expect("valid id")
}

async fn connect(hub: &HubProcess, role: Role, subject: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, subject))
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keep_every_acknowledged_change() {
    let data = chathub_testkit::ScratchDir::new("restart-data");
    let dir = data.path().to_str().expect("utf-8 path").to_owned();
    let hub = HubProcess::spawn(&["--data-dir", &dir]);

    // Ann writes; alice takes the conversation by answering and reads it.
    let ann = connect(&hub, Role::EndUser, "ann").await;
    let first = ann
        .send_text(None, "my coupon does not work", None, Some("ann-0"))
        .await
        .expect("acknowledged");
    let alice = connect(&hub, Role::Agent, "alice").await;
    let reply = alice
        .send_text(Some(&conv("ann")), "let me look", Some(0), Some("alice-0"))
        .await
        .expect("acknowledged");
    assert_eq!(reply.status, Status::Active);
    let read = alice
        .request(Op::Read {
            conversation: Some(conv("ann")),
            seq: reply.seq,
        })
        .await;
    assert!(read.is_ok(), "{read:?}");
    let admin = dev_token("acme", Role::Admin, "root");
    let (status, body) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/canned/thanks",
        &admin,
        r#"{"shortcut":"/thanks","text":"Thank you, {first_name}!"}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let history_id = ann.welcome().history_id.clone();
    assert!(first.seq > 0);

    // Ann keeps writing while the node is killed: every acknowledged send must survive.
    let acked = Arc::new(Mutex::new(vec!["ann-0".to_owned()]));
    let writer = {
        let acked = acked.clone();
        tokio::spawn(async move {
            for n in 1.. {
                let id = format!("ann-{n}");
                match ann.send_text(None, "still waiting", None, Some(&id)).await {
                    Ok(_) => acked.lock().expect("lock").push(id),
                    Err(_) => return n,
                }
            }
            unreachable!()
        })
    };
    while acked.lock().expect("lock").len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut hub = hub;
    hub.kill9();
    let attempted = writer.await.expect("writer ends when the node dies");
    let acked = acked.lock().expect("lock").clone();
    assert!(attempted as usize >= acked.len());
    drop(hub);

    // The same directory, a new process.
    let hub = HubProcess::spawn(&["--data-dir", &dir]);
    let ann = connect(&hub, Role::EndUser, "ann").await;
    assert_eq!(
        ann.welcome().history_id,
        history_id,
        "the directory keeps its history id"
    );
    let history = full_history(&ann, "ann").await;
    assert_each_once(&history, &acked);
    assert!(history.iter().any(|e| matches!(
        &e.body,
        chathub_domain::EventBody::Message { client_msg_id: Some(id), .. } if id == "alice-0"
    )));
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");

    // A client resuming from a seq before the kill gets exactly what followed it.
    let since = reply.seq;
    let resumed = ann
        .resume(None, Some(since), Some(&history_id))
        .await
        .expect("resumes");
    assert!(!resumed.history_lost);
    assert_eq!(resumed.replayed as usize, history.len() - since as usize);

    // State, queue, read mark and workspace came back too.
    let alice = connect(&hub, Role::Agent, "alice").await;
    let Ok(Reply::List(page)) = alice
        .request(Op::List {
            status: Status::Active,
            limit: None,
            cursor: None,
        })
        .await
    else {
        panic!("list answers")
    };
    let entry = page
        .items
        .iter()
        .find(|i| i.conversation == conv("ann"))
        .expect("ann is still active");
    assert_eq!(entry.owner.as_ref().map(|a| a.as_str()), Some("alice"));
    assert_eq!(entry.epoch, reply.epoch);
    // The next message continues the same seq line, and the retried last ack is the same.
    let next = alice
        .send_text(Some(&conv("ann")), "found it", Some(reply.epoch), None)
        .await
        .expect("alice still owns it, same epoch");
    assert_eq!(next.seq, seqs.len() as u64 + 1);
    let retried = alice
        .send_text(Some(&conv("ann")), "let me look", Some(0), Some("alice-0"))
        .await
        .expect("a retried send is answered as before");
    assert_eq!(retried.seq, reply.seq);
    let (status, body) = http_request(hub.http_addr, "GET", "/admin/v1/canned", &admin, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/thanks"), "{body}");
    let Ok(Reply::Open(opened)) = ann.request(Op::Open { conversation: None }).await else {
        panic!("open answers")
    };
    let alice_mark = opened
        .reads
        .iter()
        .find(|r| r.by.id == "alice")
        .map(|r| r.seq);
    assert_eq!(alice_mark, Some(reply.seq), "alice's read mark: {opened:?}");
}
