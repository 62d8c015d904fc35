//! Business hours: outside a tenant's hours (its time zone, weekly ranges, holidays) a
//! waiting end user gets one automatic reply per wait saying when the team is back
//! (`auto_reply`, in the conversation for both sides), and the alert schedule's and the
//! stall policy's clocks pause: no alert, no release while closed. Once open, the clocks
//! run. The hours are checked (`bad_request`) and audited.
//!
//! On the embedded default and on three nodes over a Redis Cluster with the archive.

use chathub_client::Client;
use chathub_domain::{EventBody, Role, Status};
use chathub_e2e::{Nodes, dev_token, full_history, http_request, state_of, take_with};
use chathub_protocol::ServerFrame;
use std::time::Duration;

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(nodes.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

async fn api(nodes: &Nodes, body: &str) -> (u16, String) {
    let admin = dev_token("acme", Role::Admin, "carol");
    http_request(nodes.http(0), "PUT", "/admin/v1/settings", &admin, body).await
}

fn auto_replies(history: &[chathub_domain::Event]) -> Vec<(String, Option<u64>)> {
    history
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::AutoReply { text, back_at } => Some((text.clone(), *back_at)),
            _ => None,
        })
        .collect()
}

/// Alerts of `conversation` on `client` within `within`.
async fn alerts(client: &mut Client, conversation: &str, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut n = 0;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some(ServerFrame::Alert(a)) if a.conversation.as_str() == conversation => n += 1,
            Some(_) => {}
            None => return n,
        }
    }
}

async fn scenario(nodes: Nodes) {
    for bad in [
        r#"{"hours":{"time_zone":"Mars/Olympus","weekly":{"mon":["09:00-18:00"]}}}"#,
        r#"{"hours":{"time_zone":"UTC","weekly":{"monday":["09:00-18:00"]}}}"#,
        r#"{"hours":{"time_zone":"UTC","weekly":{"mon":["18:00-09:00"]}}}"#,
        r#"{"hours":{"time_zone":"UTC","weekly":{}}}"#,
        r#"{"hours":{"time_zone":"UTC","weekly":{"mon":["09:00-18:00"]},"holidays":["25/12"]}}"#,
        r#"{"hours":{"time_zone":"UTC","weekly":{"mon":["09:00-18:00"]},"later":1}}"#,
    ] {
        let (status, body) = api(&nodes, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Open only on the day after tomorrow (UTC): closed now, back that day at 09:00.
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let now = chrono::Utc::now();
    let today = chrono::Datelike::weekday(&now).num_days_from_monday() as usize;
    let open_day = days[(today + 2) % 7];
    let closed = format!(
        r#"{{"hours":{{"time_zone":"UTC","weekly":{{"{open_day}":["09:00-17:00"]}},
             "closed_reply":"Closed. Back at {{back_at}} ({{time_zone}}), in about {{in}}."}},
            "alerts":{{"steps":[{{"after_secs":0,"repeat_secs":1,"notify":"available"}}]}},
            "release":{{"no_reply_secs":1}}}}"#
    );
    // Connected before the change: told when the team closes.
    let mut wendy = connect(&nodes, 2, Role::Agent, "wendy").await;
    let mut eve = connect(&nodes, 1, Role::EndUser, "eve").await;
    let (status, body) = api(&nodes, &closed).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""time_zone":"UTC""#), "{body}");
    for client in [&mut wendy, &mut eve] {
        let frame =
            chathub_e2e::expect_frame(client, "hours", |f| matches!(f, ServerFrame::Hours(_)))
                .await;
        let ServerFrame::Hours(state) = frame else {
            unreachable!()
        };
        assert!(!state.open, "{state:?}");
        assert!(
            state
                .until
                .is_some_and(|t| t > now.timestamp_millis() as u64 + 24 * 3_600_000)
        );
    }

    // Another node sees a settings change within its settings cache's second.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut alice = connect(&nodes, 1, Role::Agent, "alice").await;
    // Connecting: the welcome says so.
    let hours = alice.welcome().hours.expect("the welcome tells the hours");
    assert!(!hours.open);
    let ann = connect(&nodes, 0, Role::EndUser, "ann").await;
    ann.send_text(None, "are you there?", None, None)
        .await
        .unwrap();
    // One automatic reply, in the conversation for both sides.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let replies = auto_replies(&full_history(&ann, "ann").await);
        if let Some(r) = replies.first() {
            break r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no automatic reply");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let weekday = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ][(today + 2) % 7];
    assert!(
        reply
            .0
            .starts_with(&format!("Closed. Back at {weekday} 09:00 (UTC), in about ")),
        "{reply:?}"
    );
    let back = reply.1.expect("when it opens");
    assert!(
        back > now.timestamp_millis() as u64 + 24 * 3_600_000,
        "{reply:?}"
    );
    // She writes again: still one reply in this wait. No alert reaches alice while closed.
    ann.send_text(None, "hello??", None, None).await.unwrap();
    assert_eq!(
        alerts(&mut alice, "ann", Duration::from_millis(2_500)).await,
        0
    );
    let history = full_history(&alice, "ann").await;
    assert_eq!(auto_replies(&history).len(), 1, "{history:?}");

    // ben's owner does not answer: while closed, the stall clock does not run.
    let ben = connect(&nodes, 2, Role::EndUser, "ben").await;
    ben.send_text(None, "hi", None, None).await.unwrap();
    take_with(&alice, "ben", "hello ben").await;
    ben.send_text(None, "so?", None, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(state_of(&alice, "ben").await.status, Status::Active);

    // Open every day, all day: the clocks run — alerts come, ben is released.
    let (status, body) = api(
        &nodes,
        r#"{"hours":{"time_zone":"Europe/Lisbon","weekly":{"mon":["00:00-24:00"],"tue":["00:00-24:00"],"wed":["00:00-24:00"],"thu":["00:00-24:00"],"fri":["00:00-24:00"],"sat":["00:00-24:00"],"sun":["00:00-24:00"]}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let frame = chathub_e2e::expect_frame(
        &mut eve,
        "hours",
        |f| matches!(f, ServerFrame::Hours(h) if h.open),
    )
    .await;
    let ServerFrame::Hours(state) = frame else {
        unreachable!()
    };
    assert_eq!(state.until, None, "open all week: it never closes");
    assert!(alerts(&mut alice, "ann", Duration::from_secs(5)).await >= 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state_of(&alice, "ben").await.status != Status::Unanswered {
        assert!(
            std::time::Instant::now() < deadline,
            "ben was never released once open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // While open, no automatic reply for the new wait.
    assert_eq!(auto_replies(&full_history(&alice, "ben").await).len(), 0);
    let admin = dev_token("acme", Role::Admin, "carol");
    let (_, audit) = http_request(nodes.http(0), "GET", "/admin/v1/audit", &admin, "").await;
    assert!(audit.contains("business_hours_set"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_hours_pause_and_reply_embedded() {
    scenario(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_hours_pause_and_reply_on_a_cluster() {
    scenario(Nodes::cluster_with_archive(3, &[])).await;
}
