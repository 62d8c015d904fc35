//! Isolation, request by request: every request type tried against Ana's conversation in
//! the demo tenant by someone who must not see it — an admin of another tenant, another
//! end user, an end user whose token claims agent privileges, and an agent without
//! privileges — is refused (`forbidden`) or answered from the asker's own (empty) data, and
//! no reply or pushed frame ever carries Ana's messages, profile, engagement history or
//! the tenant's canned responses. Nothing the outsiders do changes the demo tenant.

use chathub_client::{Client, ClientError};
use chathub_domain::{Role, Status};
use chathub_e2e::{TestHub, conv, every_request};
use chathub_protocol::{ErrorCode, Op, Reply};

/// Strings only the demo tenant's insiders may ever receive.
const SECRETS: [&str; 6] = [
    "SECRET-ANA",
    "Silva",
    "autumn coupon",
    "How can I help you today",
    "coupon doesn't work",
    "points_balance\":340",
];

/// Whether a request names a conversation (and so is scoped to its end user).
fn names_conversation(op: &Op) -> bool {
    let json = serde_json::to_value(op).unwrap_or_default();
    json.get("conversation").is_some_and(|c| !c.is_null())
}

fn leaks(json: &str) -> Option<&'static str> {
    SECRETS.iter().copied().find(|s| json.contains(s))
}

struct Outsider {
    label: &'static str,
    client: Client,
    /// Conversation requests must be `forbidden` (not only free of data).
    conversation_ops_forbidden: bool,
}

#[tokio::test]
async fn outsiders_get_nothing_of_anas_conversation() {
    let hub = TestHub::start_demo(false).await;
    let ana = Client::connect(&hub.url(), &hub.token("demo", Role::EndUser, "u-ana"))
        .await
        .unwrap();
    ana.send_text(None, "SECRET-ANA-1 my card ends 4242", None, Some("s1"))
        .await
        .unwrap();

    let outsiders = vec![
        Outsider {
            label: "admin of another tenant",
            client: Client::connect(&hub.url(), &hub.token("evil", Role::Admin, "mallory"))
                .await
                .unwrap(),
            conversation_ops_forbidden: false,
        },
        Outsider {
            label: "another end user",
            client: Client::connect(&hub.url(), &hub.token("demo", Role::EndUser, "u-ben"))
                .await
                .unwrap(),
            conversation_ops_forbidden: true,
        },
        Outsider {
            label: "end user whose token claims agent privileges",
            client: Client::connect(
                &hub.url(),
                &hub.token_with(
                    "demo",
                    Role::EndUser,
                    "u-chen",
                    &[
                        "chat.take",
                        "chat.finish",
                        "chat.disable",
                        "engagement.send",
                        "canned.manage",
                    ],
                ),
            )
            .await
            .unwrap(),
            conversation_ops_forbidden: true,
        },
    ];
    let weak_agent = Client::connect(
        &hub.url(),
        &hub.token_with("demo", Role::Agent, "weak", &[]),
    )
    .await
    .unwrap();

    let mut failures = Vec::new();
    for outsider in &outsiders {
        for (name, op) in every_request("u-ana") {
            let scoped = names_conversation(&op);
            let (json, code) = match outsider.client.request(op).await {
                Ok(reply) => (serde_json::to_string(&reply).unwrap_or_default(), None),
                Err(ClientError::Server(e)) => {
                    (serde_json::to_string(&e).unwrap_or_default(), Some(e.code))
                }
                Err(e) => panic!("{} / {name}: {e}", outsider.label),
            };
            if let Some(secret) = leaks(&json) {
                failures.push(format!(
                    "{} / {name}: leaked {secret:?} in {json}",
                    outsider.label
                ));
            }
            if code == Some(ErrorCode::Internal) {
                failures.push(format!(
                    "{} / {name}: internal error {json}",
                    outsider.label
                ));
            }
            if outsider.conversation_ops_forbidden && scoped && code != Some(ErrorCode::Forbidden) {
                failures.push(format!(
                    "{} / {name}: expected forbidden, got {json}",
                    outsider.label
                ));
            }
        }
    }
    // An agent without privileges may read, but what it is refused carries no data.
    for (name, op) in every_request("u-ana") {
        if let Err(ClientError::Server(e)) = weak_agent.request(op).await {
            let json = serde_json::to_string(&e).unwrap_or_default();
            if let Some(secret) = leaks(&json) {
                failures.push(format!("weak agent / {name}: leaked {secret:?} in {json}"));
            }
        }
    }

    // Ana writes again: only insiders hear of it.
    ana.send_text(None, "SECRET-ANA-2 my address", None, Some("s2"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for mut outsider in outsiders {
        while let Some(frame) = outsider.client.try_next_event() {
            let json = serde_json::to_string(&frame).unwrap_or_default();
            if let Some(secret) = leaks(&json) {
                failures.push(format!(
                    "{}: pushed frame leaked {secret:?}: {json}",
                    outsider.label
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And nothing they did changed the demo tenant: still unanswered, no agent wrote,
    // chat not disabled, the canned responses untouched.
    let alice = Client::connect(&hub.url(), &hub.token("demo", Role::Agent, "alice"))
        .await
        .unwrap();
    assert!(!alice.welcome().chat_disabled, "another tenant's switch");
    match alice
        .request(Op::Open {
            conversation: Some(conv("u-ana")),
        })
        .await
    {
        Ok(Reply::Open(o)) => {
            assert_eq!(o.view.state.status, Status::Unanswered);
            assert!(!o.view.state.disabled);
            assert_eq!(o.view.state.epoch, 0, "nobody took it");
        }
        other => panic!("{other:?}"),
    }
    match alice.request(Op::CannedList { query: None }).await {
        Ok(Reply::CannedList(list)) => {
            assert_eq!(list.items.len(), 4, "the demo's four canned responses");
        }
        other => panic!("{other:?}"),
    }
}
