//! The business hours' part of the timer sweep: outside a tenant's hours each waiting
//! end user gets one automatic reply per wait saying when the team is back
//! (`Command::AutoReply`, decided on the `seq` the round saw, so two rounds record one),
//! and the alert and stall clocks pause ([`Clock`]).

use crate::auth::{Identity, now_millis};
use crate::ops::Ctx;
use crate::{Backend, Node};
use chathub_domain::hours::Schedule;
use chathub_domain::{Actor, AgentId, Command, EventBody, Privileges, Role, Status, TenantId};
use chathub_protocol::ErrorCode;
use chathub_store::{ConversationStore, HistoryRange, QueueEntry};
use std::sync::Arc;

/// Who the automatic reply is from (an admin id: the server acting for the tenant).
pub(crate) const AUTO_REPLY_AUTHOR: &str = "business-hours";

/// Events read back from a conversation's end to find whether this wait got its reply.
const TAIL: usize = 50;

/// How long a wait has lasted on a tenant's clocks: open time only, with business
/// hours; all of it without.
#[derive(Clone, Copy)]
pub(crate) struct Clock<'a>(pub(crate) Option<&'a Schedule>);

impl Clock<'_> {
    /// Whether the clocks run now (always, without business hours).
    pub(crate) fn running(&self, now: u64) -> bool {
        self.0.is_none_or(|s| s.is_open(now))
    }

    /// How long from `since` to `now` counts.
    pub(crate) fn elapsed(&self, since: u64, now: u64) -> u64 {
        match self.0 {
            Some(s) => s.open_ms_between(since, now),
            None => now.saturating_sub(since),
        }
    }
}

/// The server acting for the tenant's business hours: an admin with no privilege.
fn system_identity(tenant: &TenantId) -> Result<Identity, String> {
    let id = AgentId::new(AUTO_REPLY_AUTHOR).map_err(|e| e.to_string())?;
    Ok(Identity {
        tenant: tenant.clone(),
        role: Role::Admin,
        subject: AUTO_REPLY_AUTHOR.to_owned(),
        privileges: Privileges::EMPTY,
        actor: Actor::Agent {
            id,
            admin: true,
            privileges: Privileges::EMPTY,
        },
        expires_at: u64::MAX,
        name: "business hours".to_owned(),
        key: 0,
    })
}

/// One tenant's round while it is closed: the automatic reply to each waiting end user
/// who has not had it in this wait.
pub(crate) async fn reply_while_closed<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    schedule: &Schedule,
    waiting: &[QueueEntry],
) -> Result<(), String> {
    let identity = system_identity(tenant)?;
    let cx = Ctx {
        node,
        identity: &identity,
    };
    let now = now_millis();
    for entry in waiting.iter().filter(|e| e.status == Status::Unanswered) {
        let page = node
            .backend
            .store()
            .history(
                tenant,
                &entry.conversation,
                HistoryRange::Latest { limit: TAIL },
            )
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.events.last() else {
            continue;
        };
        // This wait began at its latest status change; its reply, if any, came after.
        let replied = page
            .events
            .iter()
            .rev()
            .take_while(|e| !matches!(e.body, EventBody::Status { .. }))
            .any(|e| matches!(e.body, EventBody::AutoReply { .. }));
        if replied {
            continue;
        }
        let (text, back_at) = schedule.closed_reply(now);
        let command = Command::AutoReply {
            last_seq: last.seq,
            text,
            back_at,
        };
        match crate::ops::apply::apply(&cx, entry.conversation.clone(), command).await {
            Ok(_) => {
                ::metrics::counter!(crate::metrics::AUTO_REPLIES).increment(1);
                tracing::info!(%tenant, conversation = %entry.conversation, "told a waiting end user when the team is back");
            }
            // It moved since the round read it: looked at again next round.
            Err(crate::ops::Failure::Reply(e)) if e.code == ErrorCode::InvalidState => {}
            Err(e) => tracing::warn!(?e, "automatic reply failed; the next round tries again"),
        }
    }
    Ok(())
}
