//! The retention sweep: each tenant's `retention_days` enforced in every tier.
//!
//! Every `sweep_every` (default hourly) one node — whichever takes the sweep's lease; a
//! node dying mid-sweep leaves the next one to another node within the interval — goes
//! through the tenants with a policy and, for each, with the cut-off `now - days`:
//! 1. erases the conversations whose last change is older than the cut-off, each with
//!    [`Command::Expire`](chathub_domain::Command::Expire) on the `seq` the queue index
//!    saw it at (so a message arriving meanwhile keeps it: the rule is the domain's and
//!    the script's), and their files — the same path as an end user's erasure, minus
//!    their profile: state, history, idempotency keys, read marks, queue and inbox
//!    entries, webhook jobs, the record tier and its search index; devices and consoles
//!    get `erased` with `reason: "retention"`;
//! 2. deletes the older events of the conversations still alive, in every tier (hot
//!    history, record tier with its search entries, inbox changes), and their files;
//! 3. records what it removed in the tenant's audit log (`retention_swept`).
//!
//! Between sweeps the read paths (history, replays, search, transcripts, exports) hide
//! what is past the cut-off: nothing older than the policy is ever served.

use crate::auth::{Identity, now_millis};
use crate::ops::Ctx;
use crate::{Backend, Node};
use chathub_domain::{Privilege, Privileges, TenantId};
use chathub_store::{AuditAction, ConversationStore, WorkspaceStore};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Conversations erased per round of one tenant's sweep.
const ROUND: usize = 100;
/// How often a node looks whether a sweep is due (at most; `sweep_every` when shorter).
const LOOK_EVERY: Duration = Duration::from_secs(30);

/// The oldest time a tenant with a policy of `days` keeps now (ms): events before it
/// are past the policy.
pub(crate) fn cutoff(now: u64, days: u32, day: Duration) -> u64 {
    now.saturating_sub(u64::from(days).saturating_mul(day.as_millis() as u64))
}

/// What one tenant's sweep removed.
#[derive(Debug, Default, Serialize)]
struct Swept {
    /// The cut-off, ms since the Unix epoch.
    before: u64,
    /// Conversations erased whole (idle past the cut-off).
    conversations: u64,
    /// Their events (hot tier and record tier).
    conversation_events: u64,
    /// Older events of the conversations still alive.
    #[serde(flatten)]
    trimmed: chathub_store::Trimmed,
    /// Files (attachments).
    attachments: u64,
}

impl Swept {
    fn is_empty(&self) -> bool {
        self.conversations == 0
            && self.trimmed == chathub_store::Trimmed::default()
            && self.attachments == 0
    }
}

/// The sweep loop, until the node stops.
pub(crate) async fn run<K: Backend>(node: Arc<Node<K>>) {
    let every = node.config.retention.sweep_every;
    let look = every.min(LOOK_EVERY);
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(look) => {}
        }
        if last.is_some_and(|at| at.elapsed() < every) {
            continue;
        }
        match node.backend.retention_lease(&node.id, every).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot take the sweep's lease");
                continue;
            }
        }
        last = Some(Instant::now());
        if let Err(e) = sweep(&node).await {
            ::metrics::counter!(crate::metrics::RETENTION_FAILURES).increment(1);
            tracing::warn!(error = %e, "retention sweep not finished; the next one goes on");
        }
    }
}

/// One sweep over every tenant with a policy.
async fn sweep<K: Backend>(node: &Arc<Node<K>>) -> Result<(), String> {
    let policies = node
        .backend
        .workspace()
        .retention_policies()
        .await
        .map_err(|e| e.to_string())?;
    for (tenant, days) in policies {
        let before = cutoff(now_millis(), days, node.config.retention.day);
        let swept = sweep_tenant(node, &tenant, before).await?;
        if !swept.is_empty() {
            tracing::info!(%tenant, ?swept, "retention: removed what the policy no longer keeps");
        }
    }
    Ok(())
}

/// The server acting on `tenant`'s conversations for its retention policy.
fn system_identity(tenant: &TenantId) -> Result<Identity, String> {
    let privileges = Privileges::of(&[Privilege::DataErase]);
    Identity::system(tenant, "retention", "retention policy", privileges)
}

/// Sweeps one tenant up to `before`.
async fn sweep_tenant<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    before: u64,
) -> Result<Swept, String> {
    let identity = system_identity(tenant)?;
    let cx = Ctx {
        node,
        identity: &identity,
    };
    let failed = |f: crate::ops::Failure| format!("{f:?}");
    let mut swept = Swept {
        before,
        ..Swept::default()
    };
    // What is removed is recorded even when a step fails midway (a store unreachable):
    // the audit log never misses a conversation erased before the failure.
    let removed: Result<(), String> = async {
        // 1. Conversations idle past the cut-off go whole.
        loop {
            let idle = node
                .backend
                .store()
                .idle(tenant, before, ROUND)
                .await
                .map_err(|e| e.to_string())?;
            let mut erased_now = 0;
            for entry in &idle {
                let Some(removed) = crate::ops::apply::expire(&cx, &entry.conversation, entry.seq)
                    .await
                    .map_err(failed)?
                else {
                    // Written to since its entry was read: alive, kept.
                    continue;
                };
                if let Some(attachments) = &node.attachments {
                    let files = attachments
                        .erase_conversation(tenant, &entry.conversation)
                        .await
                        .map_err(|e| e.to_string())?;
                    swept.attachments += files.attachments;
                }
                erased_now += 1;
                swept.conversation_events += removed.history_events.max(removed.archived_events);
            }
            swept.conversations += erased_now;
            // A short round is the last; a round erasing nothing (entries lagging their
            // conversations) waits for the next sweep rather than spinning.
            if idle.len() < ROUND || erased_now == 0 {
                break;
            }
        }
        // 2. The older events of conversations still alive, in every tier, and their files.
        swept.trimmed = node
            .backend
            .retention_trim(tenant, before)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(attachments) = &node.attachments {
            swept.attachments += attachments
                .erase_older_than(tenant, before)
                .await
                .map_err(|e| e.to_string())?
                .attachments;
        }
        Ok(())
    }
    .await;
    let events =
        swept.conversation_events + swept.trimmed.hot_events.max(swept.trimmed.record_events);
    ::metrics::counter!(crate::metrics::RETENTION_REMOVED, "what" => "conversations")
        .increment(swept.conversations);
    ::metrics::counter!(crate::metrics::RETENTION_REMOVED, "what" => "events").increment(events);
    ::metrics::counter!(crate::metrics::RETENTION_REMOVED, "what" => "files")
        .increment(swept.attachments);
    // 3. The tenant's audit log says what went (nothing removed: nothing recorded).
    if !swept.is_empty() {
        crate::ops::audit::record(
            &cx,
            AuditAction::RetentionSwept,
            None,
            crate::ops::audit::detail(&swept),
        )
        .await
        .map_err(failed)?;
    }
    removed.map(|()| swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_policy_before_now() {
        let day = Duration::from_secs(86_400);
        assert_eq!(cutoff(10 * 86_400_000, 3, day), 7 * 86_400_000);
        // Longer than the epoch: everything is kept.
        assert_eq!(cutoff(1000, 3650, day), 0);
    }
}
