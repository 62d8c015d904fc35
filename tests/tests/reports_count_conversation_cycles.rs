//! Reports over the record tier: `stats` (the console's figures for today) and the
//! admin API's cycles CSV, one row per conversation cycle (opened → taken → finished,
//! reopened), streamed; admins only for the CSV, agents for `stats`.

use chathub_client::Client;
use chathub_domain::{ConversationId, Role};
use chathub_e2e::{HubProcess, dev_token, http_request};
use chathub_protocol::{ErrorCode, Op, Reply};

async fn connect(hub: &HubProcess, role: Role, subject: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, subject))
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_as_csv_and_todays_figures() {
    cycles_as_csv_and_todays_figures_on(&HubProcess::spawn(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_in_cluster_mode_with_an_archive() {
    let archived = chathub_e2e::ArchivedCluster::start(1);
    cycles_as_csv_and_todays_figures_on(&archived.nodes[0]).await;
}

async fn cycles_as_csv_and_todays_figures_on(hub: &HubProcess) {
    let ann = connect(hub, Role::EndUser, "ann").await;
    ann.send_text(None, "help", None, None).await.expect("sent");
    let alice = connect(hub, Role::Agent, "alice").await;
    let c = ConversationId::new("ann").expect("id");
    let took = alice
        .send_text(Some(&c), "hi", Some(0), None)
        .await
        .expect("taken");
    let finished = alice
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(took.epoch),
        })
        .await;
    assert!(finished.is_ok(), "{finished:?}");
    ann.send_text(None, "one more thing", None, None)
        .await
        .expect("reopens");
    let bob = connect(hub, Role::EndUser, "bob").await;
    bob.send_text(None, "hello?", None, None)
        .await
        .expect("sent");

    // Reports read the record tier: in cluster mode the archive holds an event a
    // moment after its acknowledgement.
    let start = std::time::Instant::now();
    let today = loop {
        let Ok(Reply::Stats(today)) = alice
            .request(Op::Stats {
                from: None,
                to: None,
            })
            .await
        else {
            panic!("stats answers")
        };
        if today.end_user_messages >= 3 || start.elapsed() > std::time::Duration::from_secs(5) {
            break today;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (today.opened, today.answered, today.finished),
        (3, 1, 1),
        "{today:?}"
    );
    assert_eq!((today.end_user_messages, today.agent_messages), (3, 1));
    assert!(today.mean_waiting_ms.is_some() && today.mean_handling_ms.is_some());
    let refused = ann
        .request(Op::Stats {
            from: None,
            to: None,
        })
        .await
        .expect_err("end users have no stats");
    assert_eq!(refused.server().map(|e| e.code), Some(ErrorCode::Forbidden));

    let admin = dev_token("acme", Role::Admin, "root");
    let (status, csv) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/reports/cycles.csv?from=2020-01-01",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "conversation,opened_seq,opened_at,first_reply_at,owners,finished_at,finished_by,\
end_user_messages,agent_messages,waiting_ms,handling_ms,rating,comment,reward"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    let fields = |line: &str| line.split(',').map(str::to_owned).collect::<Vec<_>>();
    let first = fields(lines[1]);
    assert_eq!(first[0], "ann");
    assert_eq!(first[4], "alice");
    assert_eq!(first[6], "alice");
    assert_eq!((first[7].as_str(), first[8].as_str()), ("1", "1"));
    assert!(!first[9].is_empty() && !first[10].is_empty());
    let reopened = fields(lines[2]);
    assert_eq!((reopened[0].as_str(), reopened[5].as_str()), ("ann", ""));
    let waiting = fields(lines[3]);
    assert_eq!((waiting[0].as_str(), waiting[4].as_str()), ("bob", ""));

    // A range in the future has no cycle; a bad time is a bad request.
    let (status, csv) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/reports/cycles.csv?from=2999-01-01&to=2999-02-01",
        &admin,
        "",
    )
    .await;
    assert_eq!((status, csv.lines().count()), (200, 1), "{csv}");
    let (status, body) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/reports/cycles.csv?from=yesterday",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let agent = dev_token("acme", Role::Agent, "alice");
    let (status, _) = http_request(
        hub.http_addr,
        "GET",
        "/admin/v1/reports/cycles.csv",
        &agent,
        "",
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_node_has_no_reports() {
    let hub = HubProcess::spawn(&["--ephemeral"]);
    let alice = connect(&hub, Role::Agent, "alice").await;
    let err = alice
        .request(Op::Stats {
            from: None,
            to: None,
        })
        .await
        .expect_err("no record tier");
    assert_eq!(err.server().map(|e| e.code), Some(ErrorCode::Unavailable));
}
