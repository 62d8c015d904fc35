//! A release or an alert that falls due while no node runs still happens: the timers of
//! the stall policy and of the alert schedule are no process's (each round of the sweep
//! reads the queue, presence, history and the alert marks), so after every node is
//! killed (`kill -9`) and one is started again, the conversations whose end users were
//! left waiting go back to the queue — none released early, each after its limit, and
//! the one whose owner answered before the kill stays theirs — and the agents are
//! alerted of the one left unanswered, at the step due.
//!
//! On the embedded default (restarted on the same data directory) and in cluster mode
//! (three nodes on one Redis, all killed, a new one started).

use chathub_client::Client;
use chathub_domain::{Cause, EventBody, Role, Status};
use chathub_e2e::{HubProcess, RedisServer, conv, dev_token, full_history, http_request};
use chathub_protocol::{Op, Reply};
use std::time::{Duration, Instant};

/// The no-reply limit, seconds.
const LIMIT_SECS: u64 = 3;

async fn connect(hub: &HubProcess, role: Role, who: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, who))
        .await
        .unwrap()
}

/// Sets the policy; ann and ben wait for alice's reply, cat got hers. Returns when ann
/// and ben started waiting (ms, the server's clock in their events).
async fn left_waiting(hub: &HubProcess) -> u64 {
    let admin = dev_token("acme", Role::Admin, "carol");
    let policy = format!(
        r#"{{"release":{{"no_reply_secs":{LIMIT_SECS}}},
             "alerts":{{"steps":[{{"after_secs":{LIMIT_SECS},"repeat_secs":1,"notify":"available"}}]}}}}"#
    );
    let (status, body) =
        http_request(hub.http_addr, "PUT", "/admin/v1/settings", &admin, &policy).await;
    assert_eq!(status, 200, "{body}");
    let alice = connect(hub, Role::Agent, "alice").await;
    // dan is left unanswered: alerts fall due LIMIT_SECS after his message.
    let dan = connect(hub, Role::EndUser, "dan").await;
    dan.send_text(None, "anyone?", None, None).await.unwrap();
    let mut waiting_since = 0;
    for user in ["ann", "ben", "cat"] {
        let client = connect(hub, Role::EndUser, user).await;
        client.send_text(None, "hi", None, None).await.unwrap();
        let Ok(Reply::Open(opened)) = alice
            .request(Op::Open {
                conversation: Some(conv(user)),
            })
            .await
        else {
            panic!("open")
        };
        let epoch = alice
            .send_text(
                Some(&conv(user)),
                "hello",
                Some(opened.view.state.epoch),
                None,
            )
            .await
            .unwrap()
            .epoch;
        if user == "cat" {
            continue;
        }
        client
            .send_text(None, "still there?", None, None)
            .await
            .unwrap();
        let history = full_history(&client, user).await;
        waiting_since = waiting_since.max(history.last().map_or(0, |e| e.at));
        assert_eq!(epoch, 1);
    }
    waiting_since
}

/// Waits (bounded) until ann's and ben's conversations are released; checks none was
/// released before its limit, and cat's stays alice's; and that an available agent is
/// alerted of dan's wait, with an occurrence that was due.
async fn released_after_the_limit(hub: &HubProcess, waiting_since: u64) {
    let mut wendy = connect(hub, Role::Agent, "wendy").await;
    let alert = loop {
        match wendy.next_event_within(Duration::from_secs(10)).await {
            Some(chathub_protocol::ServerFrame::Alert(a)) if a.conversation.as_str() == "dan" => {
                break a;
            }
            Some(_) => {}
            None => panic!("no alert of dan's wait after the restart"),
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let due = alert.since + (LIMIT_SECS + u64::from(alert.occurrence)) * 1000;
    assert!(
        due <= now + 50,
        "an alert before its time: {alert:?} at {now}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for user in ["ann", "ben"] {
        loop {
            let history = full_history(&wendy, user).await;
            let release = history.iter().find(|e| {
                matches!(
                    e.body,
                    EventBody::Status {
                        cause: Cause::Released,
                        ..
                    }
                )
            });
            if let Some(release) = release {
                assert!(
                    release.at >= waiting_since + LIMIT_SECS * 1000,
                    "{user} released early: at {} for a wait from {waiting_since}",
                    release.at
                );
                break;
            }
            assert!(Instant::now() < deadline, "{user} was never released");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let Ok(Reply::Open(cat)) = wendy
        .request(Op::Open {
            conversation: Some(conv("cat")),
        })
        .await
    else {
        panic!("open")
    };
    assert_eq!(
        (
            cat.view.state.status,
            cat.view.state.owner.map(|o| o.to_string())
        ),
        (Status::Active, Some("alice".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_due_while_the_embedded_node_was_down_happens_after_its_restart() {
    let data = chathub_testkit::ScratchDir::new("release-restart");
    let dir = data.path().to_str().expect("utf-8 path").to_owned();
    let mut hub = HubProcess::spawn(&["--data-dir", &dir]);
    let since = left_waiting(&hub).await;
    hub.kill9();
    // Down past the limit: the releases fall due while nothing runs.
    tokio::time::sleep(Duration::from_secs(LIMIT_SECS + 1)).await;
    let hub = HubProcess::spawn(&["--data-dir", &dir]);
    released_after_the_limit(&hub, since).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_due_while_every_cluster_node_was_down_happens_on_a_new_one() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = ["--redis", url.as_str()];
    let mut nodes: Vec<HubProcess> = (0..3).map(|_| HubProcess::spawn(&args)).collect();
    let since = left_waiting(&nodes[1]).await;
    for node in &mut nodes {
        node.kill9();
    }
    tokio::time::sleep(Duration::from_secs(LIMIT_SECS + 1)).await;
    let node = HubProcess::spawn(&args);
    released_after_the_limit(&node, since).await;
}
