//! `kill -9` of an embedded node while 20 end users and 2 agents write at once, three
//! times over: after each restart every conversation has every acknowledged message
//! exactly once, no message twice (acknowledged or not), consecutive `seq`s, and a queue
//! entry that agrees with the conversation's state.

use chathub_client::Client;
use chathub_domain::{ConversationId, EventBody, Role, Status};
use chathub_e2e::{HubProcess, assert_each_once, dev_token, full_history};
use chathub_protocol::{Op, Reply};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USERS: usize = 20;

async fn connect(hub: &HubProcess, role: Role, subject: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, subject))
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversation_survives_kills_under_load() {
    let data = chathub_testkit::ScratchDir::new("kill-load-data");
    let dir = data.path().to_str().expect("utf-8").to_owned();
    let acked: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    for round in 0..3 {
        let hub = HubProcess::spawn(&["--data-dir", &dir]);
        let mut writers = Vec::new();
        for u in 0..USERS {
            let user = format!("u{u}");
            let client = connect(&hub, Role::EndUser, &user).await;
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("r{round}-{n}");
                    if client
                        .send_text(None, "hello", None, Some(&id))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    acked
                        .lock()
                        .expect("lock")
                        .entry(user.clone())
                        .or_default()
                        .push(id);
                }
            }));
        }
        // Two agents answer (and so take) conversations while the users write.
        for agent in ["alice", "bob"] {
            let client = connect(&hub, Role::Agent, agent).await;
            writers.push(tokio::spawn(async move {
                for n in 0.. {
                    let c = ConversationId::new(format!("u{}", n % USERS)).expect("id");
                    let epoch = match client
                        .request(Op::Open {
                            conversation: Some(c.clone()),
                        })
                        .await
                    {
                        Ok(Reply::Open(o)) => o.view.state.epoch,
                        _ => return,
                    };
                    if let Err(e) = client.send_text(Some(&c), "on it", Some(epoch), None).await
                        && e.server().is_none()
                    {
                        return;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 300 * round)).await;
        let mut hub = hub;
        hub.kill9();
        for w in writers {
            let _ = w.await;
        }
        drop(hub);

        let hub = HubProcess::spawn(&["--data-dir", &dir]);
        let reader = connect(&hub, Role::Agent, "auditor").await;
        let acked = acked.lock().expect("lock").clone();
        let total: usize = acked.values().map(Vec::len).sum();
        assert!(
            total >= (round as usize + 1) * USERS,
            "round {round}: the load ran ({total} acknowledged so far)"
        );
        let mut queued = HashMap::new();
        for status in [Status::Unanswered, Status::Active, Status::Finished] {
            let mut cursor = None;
            loop {
                let Ok(Reply::List(page)) = reader
                    .request(Op::List {
                        status,
                        limit: Some(200),
                        cursor: cursor.clone(),
                    })
                    .await
                else {
                    panic!("list answers")
                };
                for item in page.items {
                    queued.insert(item.conversation.to_string(), (item.status, item.seq));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        for u in 0..USERS {
            let user = format!("u{u}");
            let history = full_history(&reader, &user).await;
            assert_each_once(&history, acked.get(&user).map_or(&[][..], Vec::as_slice));
            let mut ids = HashSet::new();
            for e in &history {
                if let EventBody::Message {
                    client_msg_id: Some(id),
                    ..
                } = &e.body
                {
                    assert!(ids.insert(id.clone()), "round {round}: {user}'s {id} twice");
                }
            }
            let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "round {round}: {user} has no gap"
            );
            let Ok(Reply::Open(open)) = reader
                .request(Op::Open {
                    conversation: Some(ConversationId::new(&user).expect("id")),
                })
                .await
            else {
                panic!("open answers")
            };
            let state = open.view.state;
            assert_eq!(state.seq, seqs.len() as u64, "round {round}: {user}'s seq");
            assert_eq!(
                queued.get(&user),
                Some(&(state.status, state.seq)),
                "round {round}: {user}'s queue entry follows its state"
            );
        }
    }
}
