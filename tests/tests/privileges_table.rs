//! Every request type tried by every role: the server checks roles and privileges for
//! each, and the outcome is the documented one (`forbidden`, or allowed — which may still
//! fail for another reason, like `not_found`).

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, every_request};
use chathub_protocol::{ErrorCode, Op};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allowed,
    Forbidden,
}
use Expect::{Allowed as A, Forbidden as F};

/// Expected outcome per request: end user, agent, agent without privileges, admin.
const EXPECTED: &[(&str, [Expect; 4])] = &[
    ("subscribe", [A, A, A, A]),
    ("open", [A, A, A, A]),
    ("history", [A, A, A, A]),
    ("typing", [A, A, A, A]),
    ("read", [A, A, A, A]),
    ("list", [F, A, A, A]),
    ("inbox", [F, A, A, A]),
    ("send text (take)", [A, A, F, A]),
    ("send canned", [F, A, F, A]),
    ("send engagement", [F, A, F, A]),
    ("engagement_history", [F, A, A, A]),
    ("engagement_activity", [F, A, A, A]),
    ("engagements_available", [F, A, A, A]),
    ("profile", [F, A, A, A]),
    ("redeem", [A, F, F, F]),
    ("canned_list", [F, A, A, A]),
    ("canned_upsert", [F, F, F, A]),
    ("canned_delete", [F, F, F, A]),
    ("disable", [F, F, F, A]),
    ("enable", [F, F, F, A]),
    ("disable_tenant", [F, F, F, A]),
    ("enable_tenant", [F, F, F, A]),
    ("presence", [F, A, A, A]),
    ("agents", [F, A, A, A]),
    ("search", [F, A, A, A]),
    ("transcript", [A, A, A, A]),
    ("stats", [F, A, A, A]),
    ("finish", [F, A, F, A]),
    ("unsubscribe", [A, A, A, A]),
    ("attachment_upload", [A, A, A, A]),
    ("attachment_link", [A, A, A, A]),
    ("ping", [A, A, A, A]),
];

/// Fills in what depends on the conversation's state now (agents send the epoch they see).
async fn with_epoch(client: &Client, op: Op, role: Role) -> Op {
    let epoch = match client
        .request(Op::Open {
            conversation: Some(conv("u-ana")),
        })
        .await
    {
        Ok(chathub_protocol::Reply::Open(o)) => o.view.state.epoch,
        _ => 0,
    };
    match op {
        Op::Send {
            conversation,
            client_msg_id,
            text,
            canned,
            engagement,
            attachment: None,
            ..
        } => Op::Send {
            conversation,
            client_msg_id,
            text,
            canned,
            engagement,
            attachment: None,
            epoch: (role != Role::EndUser).then_some(epoch),
            visibility: Default::default(),
            handover_note: None,
        },
        Op::Finish { conversation, .. } => Op::Finish {
            conversation,
            epoch: Some(epoch),
        },
        other => other,
    }
}

#[tokio::test]
async fn every_request_by_every_role() {
    let roles: [(&str, Role, Option<&[&str]>); 4] = [
        ("end user", Role::EndUser, None),
        ("agent", Role::Agent, None),
        ("agent without privileges", Role::Agent, Some(&[])),
        ("admin", Role::Admin, None),
    ];
    let mut failures = Vec::new();
    for (column, (label, role, privileges)) in roles.into_iter().enumerate() {
        // A fresh demo tenant per role, so each column starts from the same state.
        let hub = TestHub::start_demo(false).await;
        let subject = if role == Role::EndUser {
            "u-ana"
        } else {
            "someone"
        };
        let token = match privileges {
            Some(p) => hub.token_with("demo", role, subject, p),
            None => hub.auth.mint("demo", subject, role, None, 600).unwrap(),
        };
        let client = Client::connect(&hub.url(), &token).await.unwrap();
        for (name, op) in every_request("u-ana") {
            let expected = EXPECTED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| *e)
                .unwrap_or_else(|| panic!("no expectation for {name}"));
            let op = with_epoch(&client, op, role).await;
            let outcome = match client.request(op).await {
                Ok(_) => Expect::Allowed,
                Err(e) => match e.server().map(|e| e.code) {
                    Some(ErrorCode::Forbidden) => Expect::Forbidden,
                    Some(_) => Expect::Allowed,
                    None => panic!("{label} / {name}: {e}"),
                },
            };
            if outcome != expected[column] {
                failures.push(format!(
                    "{label} / {name}: expected {:?}, got {outcome:?}",
                    expected[column]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
