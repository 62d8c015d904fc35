//! The timer sweep: each tenant's release policy (`release` in its settings) enforced,
//! and its alert schedule (`alerts`) run by [`crate::alerts`].
//!
//! Every [`SWEEP_EVERY`] one node — whichever takes the round's lease — goes through the
//! tenants with a timer setting: their alert schedule's round, then their active
//! conversations, giving back to the queue
//! (`Command::Release`, cause `released`) each one whose owner has had no live socket,
//! or been `away`, for `owner_absent_secs` (reason `owner_absent`), or whose end user's latest message
//! has had no reply for `no_reply_secs` (reason `no_reply`). Only conversations whose
//! queue entry has not changed for that long are read further (their history's tail),
//! so a round costs one queue listing per tenant and a read per stalled conversation.
//!
//! Nothing is kept in the process: each round decides from what the backend holds (the
//! queue, presence, history), so a node that dies, or every node, leaves the next round
//! of whichever node runs to do it. Each release is decided in the atomic step on the
//! epoch and `seq` the round saw: an owner's reply that lands first keeps the owner,
//! and the reply of an owner whose conversation was released first loses (`conflict`).

use crate::auth::{Identity, now_millis};
use crate::hours::Clock;
use crate::ops::Ctx;
use crate::{Backend, Node};
use chathub_domain::{
    Command, EventBody, Participant, Presence, Privileges, ReleaseReason, Role, Status, TenantId,
};
use chathub_protocol::ErrorCode;
use chathub_store::{
    ConversationStore, HistoryRange, QueueEntry, ReleasePolicy, TimerPolicies, WorkspaceStore,
};
use std::sync::Arc;
use std::time::Duration;

/// How often a round runs (a release happens at most this long after it is due).
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Active conversations read per page of one tenant's round.
const PAGE: usize = 200;
/// Events read back from a conversation's end to find its latest message (past this
/// many events of other kinds, notes or verdicts, nobody is taken to be waiting).
const TAIL: usize = 20;

/// The sweep loop, until the node stops.
pub(crate) async fn run<K: Backend>(node: Arc<Node<K>>) {
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        match node.backend.release_lease(&node.id, SWEEP_EVERY).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "stall sweep: cannot take the round's lease");
                continue;
            }
        }
        if let Err(e) = sweep(&node).await {
            tracing::warn!(error = %e, "stall sweep round not finished; the next one goes on");
        }
    }
}

/// One round over every tenant with a timer setting.
async fn sweep<K: Backend>(node: &Arc<Node<K>>) -> Result<(), String> {
    let policies = node
        .backend
        .workspace()
        .timer_policies()
        .await
        .map_err(|e| e.to_string())?;
    // One tenant's failure does not hold the others up.
    let mut failed = None;
    for (tenant, policies) in policies {
        if let Err(e) = sweep_timers(node, &tenant, &policies).await {
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// One tenant's timers: outside its business hours the automatic replies (the clocks
/// pause); inside them, or without hours, the alert schedule's round and the stall
/// policy's, on clocks that count open time only.
async fn sweep_timers<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    policies: &TimerPolicies,
) -> Result<(), String> {
    let schedule = match policies.hours.as_ref().map(|h| h.schedule()) {
        Some(Ok(schedule)) => Some(schedule),
        // Checked when set: only a stored value this version cannot read gets here.
        Some(Err(e)) => {
            tracing::warn!(%tenant, error = %e, "business hours unreadable: treated as always open");
            None
        }
        None => None,
    };
    let clock = Clock(schedule.as_ref());
    let now = now_millis();
    match &schedule {
        Some(schedule) => crate::hours::announce_change(node, tenant, schedule, now).await,
        None => {
            node.hours_seen.remove(tenant);
        }
    }
    if !clock.running(now) {
        if let Some(schedule) = &schedule {
            let waiting = crate::alerts::unanswered(node, tenant).await?;
            crate::hours::reply_while_closed(node, tenant, schedule, &waiting).await?;
        }
        return Ok(());
    }
    let mut failed = None;
    let waiting = crate::alerts::unanswered(node, tenant).await?;
    if let Err(e) = crate::hours::push_positions(node, tenant, &waiting, now).await {
        failed = Some(e);
    }
    if let Some(alerts) = &policies.alerts
        && let Err(e) = crate::alerts::sweep_tenant(
            node,
            tenant,
            alerts,
            policies.bot.as_ref(),
            clock,
            &waiting,
        )
        .await
    {
        failed = Some(e);
    }
    if let Some(policy) = policies.release
        && let Err(e) = sweep_tenant(node, tenant, policy, clock).await
    {
        failed = Some(e);
    }
    failed.map_or(Ok(()), Err)
}

/// The server acting on `tenant`'s conversations for its policy: an admin (the rule of
/// `Command::Release`) with no privilege beyond.
fn system_identity(tenant: &TenantId) -> Result<Identity, String> {
    Identity::system(tenant, "stall-policy", "stall policy", Privileges::EMPTY)
}

/// One tenant's round.
async fn sweep_tenant<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    policy: ReleasePolicy,
    clock: Clock<'_>,
) -> Result<(), String> {
    let identity = system_identity(tenant)?;
    let cx = Ctx {
        node,
        identity: &identity,
    };
    let secs = |s: Option<u32>| s.map(|s| u64::from(s) * 1000);
    let (absent_ms, no_reply_ms) = (secs(policy.owner_absent_secs), secs(policy.no_reply_secs));
    let now = now_millis();
    let presence = match absent_ms {
        Some(_) => node
            .backend
            .workspace()
            .presence(tenant, now)
            .await
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = node
            .backend
            .store()
            .list(tenant, Status::Active, PAGE, cursor.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        for entry in &page.items {
            let Some(owner) = &entry.owner else { continue };
            let absent = absent_ms.is_some_and(|limit| {
                let who = Participant::agent(owner).key();
                match presence.iter().find(|p| p.who == who) {
                    // Offline or away: since they last said `available` (or got the
                    // conversation, when later).
                    Some(p) => {
                        let present = p.last_available.unwrap_or(0).max(entry.since);
                        p.presence != Presence::Available && clock.elapsed(present, now) > limit
                    }
                    // Never seen (presence expired long ago): gone since the entry's
                    // last change at least.
                    None => clock.elapsed(entry.updated, now) > limit,
                }
            });
            let reason = if absent {
                Some((ReleaseReason::OwnerAbsent, entry.seq))
            } else if let Some(limit) = no_reply_ms
                // Nothing at all for that long: the only ones worth a read.
                && clock.elapsed(entry.updated, now) > limit
            {
                waiting_since(node, tenant, entry)
                    .await?
                    .filter(|(since, _)| clock.elapsed(*since, now) > limit)
                    .map(|(_, seq)| (ReleaseReason::NoReply, seq))
            } else {
                None
            };
            let Some((reason, last_seq)) = reason else {
                continue;
            };
            let command = Command::Release {
                seen_epoch: entry.epoch,
                last_seq,
                reason,
            };
            match crate::ops::apply::apply(&cx, entry.conversation.clone(), command).await {
                Ok(_) => {
                    tracing::info!(%tenant, conversation = %entry.conversation, reason = reason.as_str(), "released a stalled conversation");
                }
                // It moved since the round read it (a reply, a take): kept, looked at
                // again next round.
                Err(crate::ops::Failure::Reply(e))
                    if matches!(e.code, ErrorCode::Conflict | ErrorCode::InvalidState) =>
                {
                    tracing::debug!(code = ?e.code, "release not applied: it moved")
                }
                Err(e) => tracing::warn!(?e, "release failed; the next round tries again"),
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// When the end user of `entry` wrote the conversation's latest message, and the `seq`
/// of its last event; `None` when the latest message is an agent's (nobody waits).
async fn waiting_since<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    entry: &QueueEntry,
) -> Result<Option<(u64, u64)>, String> {
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
        return Ok(None);
    };
    let latest = page
        .events
        .iter()
        .rev()
        .find_map(|event| match &event.body {
            EventBody::Message { author, .. } => Some((author.role == Role::EndUser, event.at)),
            _ => None,
        });
    Ok(match latest {
        Some((true, at)) => Some((at, last.seq)),
        _ => None,
    })
}
