//! The business hours' part of the timer sweep: outside a tenant's hours each waiting
//! end user gets one automatic reply per wait saying when the team is back
//! (`Command::AutoReply`, decided on the `seq` the round saw, so two rounds record one),
//! and the alert and stall clocks pause ([`Clock`]).

use crate::auth::{Identity, now_millis};
use crate::ops::Ctx;
use crate::{Backend, Node};
use chathub_domain::hours::Schedule;
use chathub_domain::{Command, EventBody, Privileges, Status, TenantId};
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
    Identity::system(
        tenant,
        AUTO_REPLY_AUTHOR,
        "business hours",
        Privileges::EMPTY,
    )
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
    // Forget the waits that are over.
    let current: std::collections::HashSet<(&chathub_domain::ConversationId, u64)> =
        waiting.iter().map(|e| (&e.conversation, e.since)).collect();
    node.auto_replied
        .retain(|(t, c), since| t != tenant || current.contains(&(c, *since)));
    for entry in waiting.iter().filter(|e| e.status == Status::Unanswered) {
        let key = (tenant.clone(), entry.conversation.clone());
        if node
            .auto_replied
            .get(&key)
            .is_some_and(|s| *s == entry.since)
        {
            continue;
        }
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
            node.auto_replied.insert(key, entry.since);
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
                node.auto_replied.insert(key, entry.since);
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

/// Whether the team is open at `now` by `hours`, and until when (`None`: unreadable).
pub(crate) fn state_now(
    hours: &chathub_domain::hours::BusinessHours,
    now: u64,
) -> Option<chathub_protocol::HoursFrame> {
    let schedule = hours.schedule().ok()?;
    Some(chathub_protocol::HoursFrame {
        open: schedule.is_open(now),
        until: schedule.next_change(now),
    })
}

/// Tells the tenant's agents and end users when the team opens or closes: an `hours`
/// frame when the state differs from what this node's last round saw (a node that just
/// took over the rounds says it once more: harmless).
pub(crate) async fn announce_change<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    schedule: &Schedule,
    now: u64,
) {
    use chathub_broker::{Broker, Channel, Envelope};
    let open = schedule.is_open(now);
    if node.hours_seen.insert(tenant.clone(), open) == Some(open) {
        return;
    }
    let frame = chathub_protocol::ServerFrame::Hours(chathub_protocol::HoursFrame {
        open,
        until: schedule.next_change(now),
    });
    for channel in [Channel::agents(tenant), Channel::users(tenant)] {
        if let Err(e) = node
            .backend
            .broker()
            .publish(&channel, Envelope::encode(&channel, None, &frame))
            .await
        {
            tracing::debug!(error = %e, "hours change not published");
            // Told again next round.
            node.hours_seen.remove(tenant);
        }
    }
}

/// How often an unchanged place in the queue is told again (for devices that connected
/// since).
const POSITION_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The estimated wait left for the one at `position` (1: next) who has waited
/// `waited_ms`, from the tenant's recent waits before a take: the median wait, times the
/// place, shared among the agents available now, less what they waited already.
pub(crate) fn eta_secs(
    recent_waits: &[u64],
    position: u32,
    available: usize,
    waited_ms: u64,
) -> Option<u64> {
    if recent_waits.is_empty() {
        return None;
    }
    let mut sorted = recent_waits.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let expected = median.saturating_mul(u64::from(position)) / available.max(1) as u64;
    Some(expected.saturating_sub(waited_ms).div_ceil(1000))
}

/// Tells each waiting end user of `tenant` their place in the queue and the estimated
/// wait, when it changed since this node last said (or every [`POSITION_REFRESH`]):
/// a `queue_position` frame on their conversation's channel.
pub(crate) async fn push_positions<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    waiting: &[QueueEntry],
    now: u64,
) -> Result<(), String> {
    use chathub_broker::{Broker, Channel, Envelope};
    use chathub_store::WorkspaceStore;
    // Forget those who no longer wait.
    let current: std::collections::HashSet<&chathub_domain::ConversationId> =
        waiting.iter().map(|e| &e.conversation).collect();
    node.positions
        .retain(|(t, c), _| t != tenant || current.contains(c));
    if waiting.is_empty() {
        return Ok(());
    }
    let workspace = node.backend.workspace();
    let waits = workspace
        .recent_waits(tenant)
        .await
        .map_err(|e| e.to_string())?;
    let available = workspace
        .presence(tenant, now)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|p| {
            p.who.starts_with("agent:") && p.presence == chathub_domain::Presence::Available
        })
        .count();
    let total = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
    for (i, entry) in waiting.iter().enumerate() {
        let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let eta = eta_secs(&waits, position, available, now.saturating_sub(entry.since));
        // Rounded to the minute past one: an estimate that ticks every second is noise.
        let shown = eta.map(|s| if s > 60 { s.div_ceil(60) * 60 } else { s });
        let key = (tenant.clone(), entry.conversation.clone());
        let fresh = node
            .positions
            .get(&key)
            .is_some_and(|last| last.0 == (position, shown) && last.1.elapsed() < POSITION_REFRESH);
        if fresh {
            continue;
        }
        let frame =
            chathub_protocol::ServerFrame::QueuePosition(chathub_protocol::QueuePositionFrame {
                conversation: entry.conversation.clone(),
                position,
                waiting: total,
                eta_secs: shown,
            });
        let channel = Channel::conversation(tenant, &entry.conversation);
        match node
            .backend
            .broker()
            .publish(&channel, Envelope::encode(&channel, None, &frame))
            .await
        {
            Ok(()) => {
                node.positions
                    .insert(key, ((position, shown), std::time::Instant::now()));
            }
            Err(e) => tracing::debug!(error = %e, "queue position not published"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::eta_secs;

    #[test]
    fn the_estimate_follows_the_median_wait_the_place_and_the_agents() {
        assert_eq!(eta_secs(&[], 1, 1, 0), None);
        // Median 60 s: next in line, nobody waited yet: a minute.
        assert_eq!(eta_secs(&[10_000, 60_000, 600_000], 1, 1, 0), Some(60));
        // Third in line with two agents: 90 s, less the 30 s already waited.
        assert_eq!(eta_secs(&[60_000], 3, 2, 30_000), Some(60));
        // Waited past it: any moment.
        assert_eq!(eta_secs(&[60_000], 1, 0, 90_000), Some(0));
    }
}
