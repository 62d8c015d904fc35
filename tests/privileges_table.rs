//! Every request type tried by every role: the server checks roles and privileges for
//! each, and the outcome is the documented one (`forbidden`, or allowed — which may still
//! fail for another reason, like `not_found`).

use chathub_client::Client;
use chathub_domain::{Presence, Role, Status};
use chathub_e2e::{TestHub, conv};
use chathub_protocol::{ErrorCode, Op};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allowed,
    Forbidden,
}
use Expect::{Allowed as A, Forbidden as F};

/// The requests, in an order where each can succeed for a role that may make it.
fn requests() -> Vec<(&'static str, Op, [Expect; 4])> {
    let c = || Some(conv("u-ana"));
    let send = |text: &str, canned: Option<&str>, engagement: Option<&str>| Op::Send {
        conversation: c(),
        client_msg_id: None,
        text: text.into(),
        canned: canned.map(Into::into),
        engagement: engagement.map(Into::into),
        epoch: None,
    };
    //                                                        end_user  agent  weak agent  admin
    vec![
        (
            "subscribe",
            Op::Subscribe {
                conversation: c(),
                since: Some(0),
            },
            [A, A, A, A],
        ),
        ("open", Op::Open { conversation: c() }, [A, A, A, A]),
        (
            "history",
            Op::History {
                conversation: c(),
                before: None,
                after: None,
                limit: None,
            },
            [A, A, A, A],
        ),
        (
            "typing",
            Op::Typing {
                conversation: c(),
                typing: true,
            },
            [A, A, A, A],
        ),
        (
            "read",
            Op::Read {
                conversation: c(),
                seq: 1,
            },
            [A, A, A, A],
        ),
        (
            "list",
            Op::List {
                status: Status::Unanswered,
                limit: None,
                cursor: None,
            },
            [F, A, A, A],
        ),
        ("inbox", Op::Inbox { since: None }, [F, A, A, A]),
        ("send text (take)", send("hello", None, None), [A, A, F, A]),
        ("send canned", send("", Some("hello"), None), [F, A, F, A]),
        (
            "send engagement",
            send("", None, Some("spring-10")),
            [F, A, F, A],
        ),
        (
            "engagement_history",
            Op::EngagementHistory {
                conversation: conv("u-ana"),
                engagement_type: None,
                before: None,
                limit: None,
            },
            [F, A, A, A],
        ),
        (
            "engagement_activity",
            Op::EngagementActivity {
                conversation: conv("u-ana"),
                per_type: None,
            },
            [F, A, A, A],
        ),
        (
            "engagements_available",
            Op::EngagementsAvailable {
                conversation: conv("u-ana"),
                engagement_type: None,
            },
            [F, A, A, A],
        ),
        (
            "profile",
            Op::Profile {
                conversation: conv("u-ana"),
            },
            [F, A, A, A],
        ),
        (
            "redeem",
            Op::Redeem {
                engagement: "bonus-50".into(),
            },
            [A, F, F, F],
        ),
        ("canned_list", Op::CannedList { query: None }, [F, A, A, A]),
        (
            "canned_upsert",
            Op::CannedUpsert {
                canned: Some("x".into()),
                shortcut: "/x".into(),
                text: "x".into(),
            },
            [F, F, F, A],
        ),
        (
            "canned_delete",
            Op::CannedDelete { canned: "x".into() },
            [F, F, F, A],
        ),
        (
            "disable",
            Op::Disable {
                conversation: conv("u-ana"),
            },
            [F, F, F, A],
        ),
        (
            "enable",
            Op::Enable {
                conversation: conv("u-ana"),
            },
            [F, F, F, A],
        ),
        ("disable_tenant", Op::DisableTenant {}, [F, F, F, A]),
        ("enable_tenant", Op::EnableTenant {}, [F, F, F, A]),
        (
            "presence",
            Op::Presence {
                presence: Presence::Away,
            },
            [F, A, A, A],
        ),
        ("agents", Op::Agents {}, [F, A, A, A]),
        (
            "finish",
            Op::Finish {
                conversation: conv("u-ana"),
                epoch: 0,
            },
            [F, A, F, A],
        ),
        (
            "unsubscribe",
            Op::Unsubscribe { conversation: c() },
            [A, A, A, A],
        ),
        ("ping", Op::Ping {}, [A, A, A, A]),
    ]
}

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
            ..
        } => Op::Send {
            conversation,
            client_msg_id,
            text,
            canned,
            engagement,
            epoch: (role != Role::EndUser).then_some(epoch),
        },
        Op::Finish { conversation, .. } => Op::Finish {
            conversation,
            epoch,
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
        for (name, op, expected) in requests() {
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
