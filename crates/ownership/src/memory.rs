//! The embedded twin: the domain state machine applied under one lock per conversation.

use crate::frames::{
    changes_queue, mentions, ownership_lost, queue_entry, queue_item, queued_since,
    received_record, webhook_job,
};
use crate::{AlertMarks, AlertRequest, TenantAlertMarks};
use crate::{ApplyRequest, Decision, Ownership, OwnershipError};
use chathub_broker::{Broker, Channel, Envelope};
use chathub_domain::{Command, EventBody, Outcome, Participant, apply_in};
use chathub_domain::{ConversationId, Status, TenantId};
use chathub_protocol::ServerFrame;
use chathub_store::Receipt;
use chathub_store::sqlite::Write;
use chathub_store::{MemoryJobs, MemoryStore, MemoryWorkspace, WebhookJob};
use std::collections::HashMap;
use std::sync::Arc;

/// Applies commands to a [`MemoryStore`] and publishes through a broker. Holding the
/// conversation's lock from the decision to the publish makes every command atomic and
/// publish order equal `seq` order.
#[derive(Clone)]
pub struct MemoryOwnership<B> {
    store: MemoryStore,
    broker: B,
    /// Where sent engagements are recorded in the end user's history.
    workspace: MemoryWorkspace,
    /// Where agents' messages record their offline-webhook job, with its lease (ms);
    /// `None` without a webhook.
    jobs: Option<(MemoryJobs, u64)>,
    /// What the alert schedule sent, per tenant (see [`crate::alerts`]). Kept in the
    /// process: after a restart of the embedded node, the latest due occurrence of each
    /// step may be sent once more.
    alerts: Arc<std::sync::Mutex<HashMap<TenantId, TenantAlertMarks>>>,
}

impl<B: Broker> MemoryOwnership<B> {
    /// A twin writing into `store` (and the end users' engagement history into
    /// `workspace`) and publishing through `broker`.
    pub fn new(store: MemoryStore, broker: B, workspace: MemoryWorkspace) -> Self {
        MemoryOwnership {
            store,
            broker,
            workspace,
            jobs: None,
            alerts: Arc::default(),
        }
    }

    /// Records a webhook job in `jobs` for every agent message, due `lease_ms` after it.
    pub fn with_webhook_jobs(mut self, jobs: MemoryJobs, lease_ms: u64) -> Self {
        self.jobs = Some((jobs, lease_ms));
        self
    }
}

/// The domain's decision on `req` against `state`: the transition, or the decision that
/// answers a lost race or a refusal.
#[allow(clippy::result_large_err)] // returned straight to the caller, never stored
fn decide(
    req: &ApplyRequest,
    state: &chathub_domain::ConversationState,
) -> Result<chathub_domain::Transition, Decision> {
    match apply_in(&req.context, state, &req.actor, &req.command, req.at) {
        Outcome::Applied(t) => Ok(t),
        Outcome::Conflict { owner, epoch } => Err(Decision::Conflict { owner, epoch }),
        Outcome::Refused(r) => Err(Decision::Refused(r)),
    }
}

impl<B: Broker> MemoryOwnership<B> {
    /// An erasure, under the conversation's lock: decided by the domain, kept in the
    /// data directory (one write deleting every row of the conversation), then memory
    /// cleared and the `erased` notice published to its followers and the agents.
    async fn erase(
        &self,
        req: &ApplyRequest,
        record: &mut chathub_store::ConversationRecord,
    ) -> Result<Decision, OwnershipError> {
        let transition = match decide(req, &record.state) {
            Ok(t) => t,
            Err(decision) => return Ok(decision),
        };
        if transition.state == record.state {
            // Nothing to erase (no event yet, or erased already).
            return Ok(Decision::Done {
                state: transition.state,
                ack: None,
                events: Vec::new(),
                queued_since: None,
            });
        }
        let tenant = &req.tenant;
        let mut removed = crate::Erased {
            history_events: record.history.len() as u64,
            idempotency_keys: record.dedup.len() as u64,
            read_marks: record.reads.len() as u64,
            ..crate::Erased::default()
        };
        if let Some(journal) = self.store.journal() {
            removed.archived_events = journal
                .event_count(tenant, &req.conversation)
                .await
                .map_err(OwnershipError::from_store)?;
            journal
                .commit(vec![Write::Erase {
                    tenant: tenant.clone(),
                    conversation: req.conversation.clone(),
                    state: transition.state.clone(),
                    at: req.at,
                }])
                .await
                .map_err(OwnershipError::from_store)?;
        }
        record.state = transition.state.clone();
        record.history.clear();
        record.dedup.clear();
        record.reads.clear();
        let (entries, changes) = self.store.erase_from_queue(tenant, &req.conversation);
        removed.queue_entries = entries;
        removed.inbox_changes = changes;
        if let Some((jobs, _)) = &self.jobs {
            removed.webhook_jobs = jobs.remove_conversation(tenant, &req.conversation);
        }
        let frame = ServerFrame::Erased(chathub_protocol::ErasedFrame {
            conversation: req.conversation.clone(),
            seq: transition.state.seq,
            reason: crate::erasure_reason(&req.command),
        });
        for channel in [
            Channel::conversation(tenant, &req.conversation),
            Channel::agents(tenant),
        ] {
            let published = self
                .broker
                .publish(&channel, Envelope::encode(&channel, None, &frame))
                .await;
            if let Err(e) = published {
                tracing::warn!(error = %e, %channel, "erased publish failed");
            }
        }
        Ok(Decision::Erased {
            state: transition.state,
            removed,
        })
    }
}

impl<B: Broker> Ownership for MemoryOwnership<B> {
    async fn apply(&self, mut req: ApplyRequest) -> Result<Decision, OwnershipError> {
        let config = self.store.config().clone();
        let record = self.store.record(&req.tenant, &req.conversation);
        let mut record = record.lock().await;
        // An amendment is decided on its target as memory holds it now, under the lock
        // (the caller's copy stands only for a message older than memory's window).
        if let Command::Amend { target, .. } = &req.command
            && let Some(event) = record.event(*target)
        {
            req.context.target = Some(event.clone());
        }
        let dedup_key = match &req.command {
            Command::Send {
                client_msg_id: Some(id),
                ..
            }
            | Command::Note {
                client_msg_id: Some(id),
                ..
            } => Some((Participant::of(&req.actor).key(), id.clone())),
            _ => None,
        };
        if matches!(req.command, Command::Erase | Command::Expire { .. }) {
            return self.erase(&req, &mut record).await;
        }
        if let Some(ack) = dedup_key.as_ref().and_then(|k| record.recall(k, req.at)) {
            return Ok(Decision::Done {
                state: record.state.clone(),
                ack: Some(ack.clone()),
                events: Vec::new(),
                queued_since: None,
            });
        }
        let transition = match decide(&req, &record.state) {
            Ok(t) => t,
            Err(decision) => return Ok(decision),
        };
        let ack =
            matches!(req.command, Command::Send { .. } | Command::Note { .. }).then(|| Receipt {
                conversation: req.conversation.clone(),
                seq: transition
                    .events
                    .iter()
                    .rev()
                    .find(|e| matches!(e.body, EventBody::Message { .. } | EventBody::Note { .. }))
                    .map_or(transition.state.seq, |e| e.seq),
                status: transition.state.status,
                owner: transition.state.owner.clone(),
                epoch: transition.state.epoch,
            });
        // Everything the command changes, decided before anything is written: the
        // queue entry it leaves, its inbox position, the webhook job, the end user's
        // "received" record.
        let tenant = &req.tenant;
        let queue = (!transition.events.is_empty()).then(|| {
            let previous = self.store.queue_entry(tenant, &req.conversation);
            let since = queued_since(previous.as_ref(), &transition.state);
            let entry = queue_entry(
                &req.conversation,
                &transition.state,
                &transition.events,
                previous.as_ref(),
            );
            let changed = previous.as_ref().is_none_or(|p| p.seq < entry.seq);
            (entry, since, changed)
        });
        let inbox_position = match &queue {
            Some((_, _, true)) if changes_queue(&transition.events) => {
                Some(self.store.reserve_inbox_position(tenant))
            }
            _ => None,
        };
        let job = match (&self.jobs, webhook_job(&transition.events)) {
            (Some((_, lease)), Some(seq)) => Some((
                WebhookJob {
                    tenant: tenant.clone(),
                    conversation: req.conversation.clone(),
                    seq,
                },
                req.at + lease,
            )),
            _ => None,
        };
        let received = received_record(&req.conversation, &transition.events);
        let user = req.conversation.end_user();
        // With a data directory, the command is kept before memory changes and before
        // anything is published: an acknowledgement means it is on disk.
        if let Some(journal) = self.store.journal() {
            let mut writes = vec![
                Write::State {
                    tenant: tenant.clone(),
                    conversation: req.conversation.clone(),
                    state: transition.state.clone(),
                    at: req.at,
                },
                Write::Events {
                    tenant: tenant.clone(),
                    conversation: req.conversation.clone(),
                    events: transition.events.clone(),
                },
            ];
            if let (Some((author, id)), Some(ack)) = (&dedup_key, &ack) {
                writes.push(Write::Send {
                    tenant: tenant.clone(),
                    conversation: req.conversation.clone(),
                    author: author.clone(),
                    client_msg_id: id.clone(),
                    receipt: ack.clone(),
                    expires: req.at + config.dedup_window_ms,
                });
            }
            if let Some((entry, _, true)) = &queue {
                writes.push(Write::Queue {
                    tenant: tenant.clone(),
                    entry: entry.clone(),
                });
                if let Some(position) = inbox_position {
                    writes.push(Write::Inbox {
                        tenant: tenant.clone(),
                        position,
                        entry: entry.clone(),
                        keep: config.inbox_max_len.max(1) as u64,
                    });
                }
            }
            if let Some((job, due)) = &job {
                writes.push(Write::JobAdded {
                    job: job.clone(),
                    due: *due,
                });
            }
            if let Some(record) = &received {
                writes.push(
                    MemoryWorkspace::history_write(tenant, &user, record)
                        .map_err(OwnershipError::from_store)?,
                );
            }
            journal
                .commit(writes)
                .await
                .map_err(OwnershipError::from_store)?;
        }
        record.state = transition.state.clone();
        record.append(&transition.events, config.history_max_len);
        if let (Some(key), Some(ack)) = (dedup_key, &ack) {
            record.remember(key, ack.clone(), req.at, req.at + config.dedup_window_ms);
        }
        let channel = Channel::conversation(tenant, &req.conversation);
        for event in &transition.events {
            let published = self
                .broker
                .publish(
                    &channel,
                    Envelope::event(&channel, &req.conversation, event),
                )
                .await;
            if let Err(e) = published {
                // Recorded in history already: subscribers repair the gap from there.
                tracing::warn!(error = %e, %channel, "publish failed");
            }
        }
        // What the command owes beyond its events, under the same lock: the previous
        // owner's notice and the end user's "received" record.
        if let Some((previous, frame)) = ownership_lost(&req.conversation, &transition.events) {
            let mine = Channel::agent(tenant, &previous);
            let frame = ServerFrame::OwnershipLost(frame);
            if let Err(e) = self
                .broker
                .publish(&mine, Envelope::encode(&mine, None, &frame))
                .await
            {
                tracing::warn!(error = %e, "ownership_lost publish failed");
            }
        }
        for (agent, frame) in mentions(&req.conversation, &transition.events) {
            let theirs = Channel::agent(tenant, &agent);
            let frame = ServerFrame::Mention(frame);
            if let Err(e) = self
                .broker
                .publish(&theirs, Envelope::encode(&theirs, None, &frame))
                .await
            {
                tracing::warn!(error = %e, "mention publish failed");
            }
        }
        if let (Some((jobs, _)), Some((job, due))) = (&self.jobs, job) {
            jobs.add(job, due);
        }
        if let Some(record) = received {
            self.workspace.restore_history(tenant, &user, record);
        }
        // The tenant's queue index, idempotent by seq.
        let mut since = None;
        if let Some((entry, queued, changed)) = queue {
            since = queued;
            if changed {
                self.store.upsert_queue(tenant, entry.clone());
            }
            if let Some(position) = inbox_position {
                let agents = Channel::agents(tenant);
                let change = self.store.insert_inbox(tenant, position, entry);
                let frame = ServerFrame::Queue(queue_item(change.entry, Some(change.cursor)));
                let published = self
                    .broker
                    .publish(&agents, Envelope::encode(&agents, None, &frame))
                    .await;
                if let Err(e) = published {
                    tracing::warn!(error = %e, "queue publish failed");
                }
            }
        }
        Ok(Decision::Done {
            state: transition.state,
            ack,
            events: transition.events,
            queued_since: since,
        })
    }

    async fn alert(&self, req: AlertRequest) -> Result<Vec<u32>, OwnershipError> {
        // Under the conversation's lock, as every command: a take decides, updates the
        // queue entry and publishes under it, so it is wholly before or after this.
        let record = self.store.record(&req.tenant, &req.conversation);
        let _record = record.lock().await;
        let waiting = self
            .store
            .queue_entry(&req.tenant, &req.conversation)
            .is_some_and(|e| {
                e.status == Status::Unanswered && e.epoch == req.epoch && e.since == req.since
            });
        if !waiting {
            return Ok(Vec::new());
        }
        let mut sent = Vec::new();
        let mut owed = Vec::new();
        {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            let tenant = alerts.entry(req.tenant.clone()).or_default();
            let mut marks = AlertMarks::after(
                tenant.get(&req.conversation),
                req.epoch,
                req.since,
                req.steps,
            );
            for due in &req.due {
                let (step, k) = (due.frame.step, due.frame.occurrence);
                if step < req.steps && marks.owes(req.epoch, req.since, step, k) {
                    marks.sent[step as usize] = Some(k);
                    sent.push(step);
                    owed.push(due);
                }
            }
            if !sent.is_empty() {
                tenant.insert(req.conversation.clone(), marks);
            }
        }
        for due in owed {
            let frame = ServerFrame::Alert(due.frame.clone());
            for agent in &due.online {
                let theirs = Channel::agent(&req.tenant, agent);
                if let Err(e) = self
                    .broker
                    .publish(&theirs, Envelope::encode(&theirs, None, &frame))
                    .await
                {
                    tracing::warn!(error = %e, "alert publish failed");
                }
            }
        }
        Ok(sent)
    }

    async fn alert_marks(&self, tenant: &TenantId) -> Result<TenantAlertMarks, OwnershipError> {
        let alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(alerts.get(tenant).cloned().unwrap_or_default())
    }

    async fn forget_alerts(
        &self,
        tenant: &TenantId,
        stale: &[(ConversationId, AlertMarks)],
    ) -> Result<(), OwnershipError> {
        let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(marks) = alerts.get_mut(tenant) {
            for (c, old) in stale {
                if marks
                    .get(c)
                    .is_some_and(|m| (m.epoch, m.since) == (old.epoch, old.since))
                {
                    marks.remove(c);
                }
            }
        }
        Ok(())
    }
}
