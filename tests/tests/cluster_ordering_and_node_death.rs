//! Three gateway processes and one redis-server. The end user writes on node 1, agents
//! follow on nodes 2 and 3; every participant sees the same `seq` order with no gap and
//! no duplicate. Mid-conversation node 2 is killed with SIGKILL: its clients reconnect to
//! node 3 and resume from their last `seq`; nothing acknowledged is lost or duplicated.

use chathub_client::Client;
use chathub_domain::{EventBody, MessageContent, Role};
use chathub_e2e::{ClusterProcesses, RedisOptions, conv, dev_token, full_history};
use chathub_protocol::ServerFrame;
use std::collections::HashMap;
use std::time::Duration;

const MESSAGES: usize = 200;
const KILL_AFTER: usize = 60;

/// Follows conversation `u-1` from `urls[0]`, moving to the next URL whenever the
/// connection drops, resuming from the last `seq` seen. Returns every `seq` received, in
/// order, once it has seen the message "END".
async fn follow(urls: Vec<String>, role: Role, subject: &'static str) -> (Vec<u64>, usize) {
    let token = dev_token("acme", role, subject);
    let c = conv("u-1");
    let mut seqs: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    for url in urls.iter().cycle().take(10) {
        let Ok(mut client) = Client::connect(url, &token).await else {
            continue;
        };
        let since = seqs.last().copied().unwrap_or(0);
        let sub = match client.subscribe(Some(&c), Some(since)).await {
            Ok(s) => s,
            Err(_) => continue,
        };
        assert!(!sub.history_truncated);
        loop {
            match client.next_event_within(Duration::from_secs(30)).await {
                Some(ServerFrame::Event(e)) => {
                    seqs.push(e.event.seq);
                    if let EventBody::Message {
                        content: MessageContent::Text { text },
                        ..
                    } = &e.event.body
                        && text == "END"
                    {
                        return (seqs, reconnects);
                    }
                }
                Some(_) => {}
                None => break, // connection lost (or silence): reconnect elsewhere
            }
        }
        reconnects += 1;
    }
    panic!("{subject} never saw the end; got {} events", seqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_order_everywhere_and_resume_after_node_death() {
    let mut cluster = ClusterProcesses::start(3, RedisOptions::default());
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i).to_owned()).collect();
    let user = cluster.connect(0, Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, Some("u-0"))
        .await
        .unwrap();
    let bob = cluster.connect(2, Role::Agent, "bob").await;
    let c = conv("u-1");
    // Carol, on the node about to die, owns another conversation.
    let other_user = cluster.connect(0, Role::EndUser, "u-2").await;
    other_user.send_text(None, "hi", None, None).await.unwrap();
    let carol = cluster.connect(1, Role::Agent, "carol").await;
    let taken = carol
        .send_text(Some(&conv("u-2")), "carol here", Some(0), None)
        .await
        .unwrap();
    bob.send_text(Some(&c), "bob here", Some(0), Some("b-0"))
        .await
        .unwrap();

    // Followers: the user's second device and alice on node 2 (index 1, to be killed),
    // a watcher on node 3.
    let on_doomed_node = vec![urls[1].clone(), urls[2].clone()];
    let device = tokio::spawn(follow(on_doomed_node.clone(), Role::EndUser, "u-1"));
    let alice = tokio::spawn(follow(on_doomed_node, Role::Agent, "alice"));
    let watcher = tokio::spawn(follow(vec![urls[2].clone()], Role::Admin, "watcher"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut acked: Vec<String> = vec!["u-0".into(), "b-0".into()];
    for i in 1..=MESSAGES {
        let ack = if i % 10 == 0 {
            let id = format!("b-{i}");
            bob.send_text(Some(&c), &format!("bob {i}"), Some(1), Some(&id))
                .await
                .map(|_| id)
        } else {
            let id = format!("u-{i}");
            user.send_text(None, &format!("user {i}"), None, Some(&id))
                .await
                .map(|_| id)
        };
        acked.push(ack.unwrap());
        if i == KILL_AFTER {
            cluster.nodes[1].kill9();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    user.send_text(None, "END", None, Some("end"))
        .await
        .unwrap();

    let history = full_history(&bob, "u-1").await;
    let last = history.last().unwrap().seq;
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(history.iter().map(|e| e.seq).collect::<Vec<_>>(), expected);
    for (name, task) in [("device", device), ("alice", alice), ("watcher", watcher)] {
        let (seqs, reconnects) = task.await.unwrap();
        assert_eq!(seqs, expected, "{name}: every event once, in order");
        if name != "watcher" {
            assert!(reconnects >= 1, "{name} was on the killed node");
        }
    }
    // Every acknowledged message is in history exactly once.
    let mut ids: HashMap<String, usize> = HashMap::new();
    for e in &history {
        if let EventBody::Message {
            client_msg_id: Some(id),
            ..
        } = &e.body
        {
            *ids.entry(id.clone()).or_default() += 1;
        }
    }
    for id in &acked {
        assert_eq!(ids.get(id), Some(&1), "acknowledged {id} once");
    }

    // Ownership is unchanged by the node's death: carol still owns u-2 with the same
    // epoch, and writes on from another node with it.
    drop(carol);
    let carol = cluster.connect(2, Role::Agent, "carol").await;
    let again = carol
        .send_text(Some(&conv("u-2")), "still mine", Some(taken.epoch), None)
        .await
        .expect("carol still owns it, at the same epoch");
    assert_eq!(again.epoch, taken.epoch);
    assert_eq!(again.owner.as_ref().map(|o| o.as_str()), Some("carol"));
}
