//! What an applied command's events set off in the gateway: the ownership-change
//! metrics, and the offline delivery webhook's jobs (recorded by the atomic step; this
//! node offers its own at once, and sweeps up those whose node died). The previous
//! owner's `ownership_lost` notice and the end user's "received" record are the atomic
//! step's own (see `chathub_ownership::frames`). Failures are logged: the command itself
//! is done.

use super::Ctx;
use crate::auth::now_millis;
use crate::webhook::Delivery;
use crate::{Backend, Node};
use chathub_domain::{Event, EventBody, Participant};
use chathub_store::{ConversationStore, HistoryRange, WebhookJob, WebhookJobs, WorkspaceStore};
use std::sync::Arc;
use std::time::Duration;

/// How often a node looks for webhook jobs whose lease is over.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Jobs claimed per sweep.
const SWEEP_BATCH: usize = 64;

/// Runs the follow-ups of `events`, just applied to `conversation`.
pub(crate) async fn after_applied<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &chathub_domain::ConversationId,
    events: &[Event],
    queued_since: Option<u64>,
) {
    let t = &cx.identity.tenant;
    for event in events {
        crate::metrics::observe_ownership_change(event, queued_since);
    }
    // A take out of the queue: how long it waited, for the estimate end users are shown.
    if let Some(since) = queued_since
        && let Some(taken) = events.iter().find(|e| {
            matches!(
                e.body,
                EventBody::Status {
                    cause: chathub_domain::Cause::Taken,
                    ..
                }
            )
        })
    {
        use chathub_store::WorkspaceStore;
        let waited = taken.at.saturating_sub(since);
        if let Err(e) = cx.node.backend.workspace().record_wait(t, waited).await {
            tracing::debug!(error = %e, "cannot remember a wait");
        }
    }
    if cx.node.webhook.is_none() {
        return;
    }
    // The step recorded a job for an agent's message: this node offers it at once.
    if let Some(seq) = chathub_ownership::frames::webhook_job(events)
        && let Some(event) = events.iter().find(|e| e.seq == seq)
    {
        let job = WebhookJob {
            tenant: t.clone(),
            conversation: conversation.clone(),
            seq,
        };
        offer(cx.node, job, event).await;
    }
}

/// Queues the webhook of `job` (whose message is `event`) when the end user has no live
/// socket, else completes the job: they see the message.
async fn offer<K: Backend>(node: &Node<K>, job: WebhookJob, event: &Event) {
    let Some(webhook) = &node.webhook else {
        return;
    };
    let (kind, author, content) = match &event.body {
        EventBody::Message {
            author, content, ..
        } => ("message", Some(author.clone()), content.clone()),
        // The survey after a finish: its question, for the app's notification.
        EventBody::Survey { prompt } => (
            "survey",
            None,
            chathub_domain::MessageContent::Text {
                text: prompt.clone(),
            },
        ),
        EventBody::Note {
            author,
            text,
            mentions,
            ..
        } => return offer_mentions(node, webhook, job, event.at, author, text, mentions).await,
        _ => return complete(node, &job).await,
    };
    let who = Participant::end_user(&job.conversation.end_user()).key();
    match node
        .backend
        .workspace()
        .online(&job.tenant, &who, now_millis())
        .await
    {
        Ok(true) => complete(node, &job).await,
        Ok(false) => webhook.enqueue(Delivery {
            kind,
            agent: None,
            id: format!("{}/{}/{}", job.tenant, job.conversation, job.seq),
            tenant: job.tenant.to_string(),
            conversation: job.conversation.to_string(),
            seq: job.seq,
            at: event.at,
            author,
            content,
            alert: None,
            job: Some(job),
        }),
        // The job stays: it comes back after its lease.
        Err(e) => tracing::warn!(error = %e, "cannot check presence for the webhook"),
    }
}

/// The agent push of a note: one delivery per mentioned agent with no live socket (the
/// last carries the job, completed when it ends); none offline: the job is done.
async fn offer_mentions<K: Backend>(
    node: &Node<K>,
    webhook: &crate::webhook::Webhook,
    job: WebhookJob,
    at: u64,
    author: &chathub_domain::Author,
    text: &str,
    mentions: &[chathub_domain::AgentId],
) {
    let mut offline = Vec::new();
    for agent in mentions {
        let who = Participant::Agent(agent.clone()).key();
        match node
            .backend
            .workspace()
            .online(&job.tenant, &who, now_millis())
            .await
        {
            Ok(true) => {}
            Ok(false) => offline.push(agent),
            // The job stays: it comes back after its lease.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check presence for the agent push");
                return;
            }
        }
    }
    let Some(last) = offline.len().checked_sub(1) else {
        return complete(node, &job).await;
    };
    for (i, agent) in offline.into_iter().enumerate() {
        webhook.enqueue(Delivery {
            kind: "mention",
            agent: Some(agent.to_string()),
            id: format!("{}/{}/{}/{agent}", job.tenant, job.conversation, job.seq),
            tenant: job.tenant.to_string(),
            conversation: job.conversation.to_string(),
            seq: job.seq,
            at,
            author: Some(author.clone()),
            content: chathub_domain::MessageContent::Text {
                text: text.to_owned(),
            },
            alert: None,
            job: (i == last).then(|| job.clone()),
        });
    }
}

async fn complete<K: Backend>(node: &Node<K>, job: &WebhookJob) {
    if let Err(e) = node.backend.jobs().complete(job).await {
        // It comes back after its lease and is offered again (at least once).
        tracing::warn!(error = %e, "cannot complete a webhook job");
    }
}

/// Completes the jobs of deliveries that ended.
pub(crate) async fn complete_jobs<K: Backend>(
    node: Arc<Node<K>>,
    mut done: tokio::sync::mpsc::Receiver<WebhookJob>,
) {
    while let Some(job) = done.recv().await {
        complete(&node, &job).await;
    }
}

/// Offers the webhook jobs whose lease is over: their node died, or has not finished
/// with them in time. Runs on every node with a webhook.
pub(crate) async fn sweep_jobs<K: Backend>(node: Arc<Node<K>>, lease: Duration) {
    let lease_ms = lease.as_millis() as u64;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let claimed = match node
            .backend
            .jobs()
            .claim_due(now_millis(), lease_ms, SWEEP_BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::debug!(error = %e, "cannot claim webhook jobs");
                continue;
            }
        };
        for job in claimed {
            let range = HistoryRange::After {
                after: job.seq.saturating_sub(1),
                limit: 1,
            };
            let read = node
                .backend
                .store()
                .history(&job.tenant, &job.conversation, range)
                .await;
            match read {
                Ok(slice) => match slice.events.into_iter().find(|e| e.seq == job.seq) {
                    Some(event) => offer(&node, job, &event).await,
                    // Gone from history (trimmed or erased): nothing left to push.
                    None => complete(&node, &job).await,
                },
                Err(e) => tracing::debug!(error = %e, "cannot read a webhook job's message"),
            }
        }
    }
}
