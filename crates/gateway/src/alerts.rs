//! The alert sweep: each tenant's alert schedule (`alerts` in its settings) run by the
//! server while conversations wait unanswered.
//!
//! A round of the timer sweep (see [`crate::stall`]: every second, on the node holding
//! the round's lease) lists the tenant's unanswered conversations and the marks of what
//! was already sent, and for each conversation works out, per step, the latest
//! occurrence due (`after_secs`, then every `repeat_secs`) counted from when it entered
//! the queue. Anything owed is decided and published in one atomic step against the
//! tenant's queue entry ([`chathub_ownership::alerts`]): only while it still waits in
//! that cycle, each occurrence once. So a take cancels every pending step on every node:
//! after the take's queue frame no agent gets an alert of that cycle, and the taker's
//! session drops one still in flight when its take's answer came first
//! ([`AlertFence`]).
//!
//! Targets come from the tenant's presence listing: `available` the agents available
//! now, `agents` everyone listed, `supervisors` those whose latest session held
//! `chat.supervise`. Agents with a live session get the `alert` frame on every device;
//! the others (for `agents` and `supervisors`) the push webhook (`type: "alert"`), and a
//! breach step also a `breach` delivery. Nothing lives in the process: a round decides
//! from the queue and the marks, so after every node died the next round sends what is
//! due (only the latest occurrence of each step: missed repeats are not replayed).

use crate::auth::now_millis;
use crate::{Backend, Node, metrics};
use chathub_domain::{AgentId, ConversationId, Presence, Status, TenantId};
use chathub_ownership::{AlertDue, AlertRequest, Ownership};
use chathub_protocol::{AlertFrame, AlertLevel};
use chathub_store::{
    AlertSchedule, AlertTarget, ConversationStore, PresenceEntry, QueueEntry, WorkspaceStore,
};
use std::collections::HashSet;
use std::sync::Arc;

/// Unanswered conversations read per page of one tenant's round.
const PAGE: usize = 500;

/// Unanswered conversations one tenant's round looks at (the oldest first); the rest
/// wait for a round with fewer.
pub(crate) const MAX_WAITING_PER_ROUND: usize = 10_000;

/// One tenant's round of its alert schedule.
pub(crate) async fn sweep_tenant<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
    schedule: &AlertSchedule,
    bot: Option<&AgentId>,
    clock: crate::hours::Clock<'_>,
    waiting: &[QueueEntry],
) -> Result<(), String> {
    let now = now_millis();
    observe_ages(tenant, waiting, now);
    let ownership = node.backend.ownership();
    let marks = ownership
        .alert_marks(tenant)
        .await
        .map_err(|e| e.to_string())?;
    // Marks of cycles that are over (taken, finished, released into a new cycle).
    let current: HashSet<(&ConversationId, u64, u64)> = waiting
        .iter()
        .map(|e| (&e.conversation, e.epoch, e.since))
        .collect();
    let stale: Vec<(ConversationId, chathub_ownership::AlertMarks)> = marks
        .iter()
        .filter(|(c, m)| !current.contains(&(*c, m.epoch, m.since)))
        .map(|(c, m)| (c.clone(), m.clone()))
        .collect();
    if !stale.is_empty() {
        ownership
            .forget_alerts(tenant, &stale)
            .await
            .map_err(|e| e.to_string())?;
    }
    let steps = schedule.steps.len() as u32;
    let mut presence: Option<Vec<PresenceEntry>> = None;
    for entry in waiting.iter().filter(|e| !e.disabled) {
        // Open time only, with business hours (the round runs only while open).
        let elapsed = clock.elapsed(entry.since, now);
        let marked = marks.get(&entry.conversation);
        let owed: Vec<(u32, u32)> = schedule
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| Some((i as u32, step.due_occurrence(elapsed)?)))
            .filter(|(i, k)| marked.is_none_or(|m| m.owes(entry.epoch, entry.since, *i, *k)))
            .collect();
        if owed.is_empty() {
            continue;
        }
        let listed = match &presence {
            Some(p) => p,
            None => presence.insert(
                node.backend
                    .workspace()
                    .presence(tenant, now)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let mut due = Vec::with_capacity(owed.len());
        let mut offline = Vec::with_capacity(owed.len());
        for (i, k) in owed {
            let step = &schedule.steps[i as usize];
            let (online, away) = targets(listed, step.notify, bot);
            due.push(AlertDue {
                frame: AlertFrame {
                    conversation: entry.conversation.clone(),
                    epoch: entry.epoch,
                    seq: entry.seq,
                    since: entry.since,
                    step: i,
                    occurrence: k,
                    level: level_of(step.notify, step.breach),
                    preview: entry.preview.clone(),
                },
                online,
            });
            offline.push(away);
        }
        let request = AlertRequest {
            tenant: tenant.clone(),
            conversation: entry.conversation.clone(),
            epoch: entry.epoch,
            since: entry.since,
            steps,
            due: due.clone(),
        };
        let sent = match ownership.alert(request).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(error = %e, conversation = %entry.conversation, "alert not decided; the next round tries again");
                continue;
            }
        };
        let first = marked.is_none_or(|m| {
            (m.epoch, m.since) != (entry.epoch, entry.since) || m.sent.iter().all(Option::is_none)
        });
        if first && !sent.is_empty() {
            ::metrics::histogram!(metrics::FIRST_ALERT).record(elapsed as f64 / 1000.0);
        }
        for (due, away) in due.into_iter().zip(offline) {
            if !sent.contains(&due.frame.step) {
                continue;
            }
            let level = due.frame.level.as_str();
            ::metrics::counter!(metrics::ALERTS, "level" => level, "via" => "socket")
                .increment(due.online.len() as u64);
            ::metrics::counter!(metrics::ALERTS, "level" => level, "via" => "push")
                .increment(away.len() as u64);
            if due.frame.level == AlertLevel::Breach {
                ::metrics::counter!(metrics::BREACHES).increment(1);
            }
            tracing::info!(%tenant, conversation = %entry.conversation, step = due.frame.step, occurrence = due.frame.occurrence, level, agents = due.online.len(), pushed = away.len(), "alert sent");
            push(node, tenant, &due.frame, &away, now);
        }
    }
    Ok(())
}

/// The tenant's unanswered conversations, the longest waiting first (at most
/// [`MAX_WAITING_PER_ROUND`]).
pub(crate) async fn unanswered<K: Backend>(
    node: &Arc<Node<K>>,
    tenant: &TenantId,
) -> Result<Vec<QueueEntry>, String> {
    let mut waiting = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = node
            .backend
            .store()
            .list(tenant, Status::Unanswered, PAGE, cursor.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        waiting.extend(page.items);
        match page.next_cursor {
            Some(next) if waiting.len() < MAX_WAITING_PER_ROUND => cursor = Some(next),
            _ => break,
        }
    }
    waiting.truncate(MAX_WAITING_PER_ROUND);
    Ok(waiting)
}

/// How pressing a step's alerts are.
fn level_of(notify: AlertTarget, breach: bool) -> AlertLevel {
    match (breach, notify) {
        (true, _) => AlertLevel::Breach,
        (false, AlertTarget::Supervisors) => AlertLevel::Escalation,
        (false, _) => AlertLevel::Reminder,
    }
}

/// Whom a step reaches, from the presence listing: the agents with a live session (their
/// devices get the frame) and those without one (the push webhook; never for
/// `available`, which means "available now"). The tenant's `bot` is listed with the
/// agents but never alerted: it does not take conversations.
fn targets(
    listed: &[PresenceEntry],
    notify: AlertTarget,
    bot: Option<&AgentId>,
) -> (Vec<AgentId>, Vec<AgentId>) {
    let (mut online, mut offline) = (Vec::new(), Vec::new());
    for p in listed {
        let Some(id) = p
            .who
            .strip_prefix("agent:")
            .and_then(|id| AgentId::new(id).ok())
        else {
            continue;
        };
        if bot == Some(&id) {
            continue;
        }
        let wanted = match notify {
            AlertTarget::Available => p.presence == Presence::Available,
            AlertTarget::Agents => true,
            AlertTarget::Supervisors => p.supervisor,
        };
        if !wanted {
            continue;
        }
        if p.presence == Presence::Offline {
            offline.push(id);
        } else {
            online.push(id);
        }
    }
    (online, offline)
}

/// The push webhook for `offline` agents, and a breach's own delivery (with a webhook
/// configured). Deduplicated by id: `tenant/conversation/epoch/since/step/occurrence`
/// (and `/agent`).
fn push<K: Backend>(
    node: &Node<K>,
    tenant: &TenantId,
    frame: &AlertFrame,
    offline: &[AgentId],
    now: u64,
) {
    let Some(webhook) = &node.webhook else {
        return;
    };
    let id = format!(
        "{tenant}/{}/{}/{}/alert/{}/{}",
        frame.conversation, frame.epoch, frame.since, frame.step, frame.occurrence
    );
    let text = match &frame.preview {
        Some(preview) => format!("Waiting for an answer: {preview}"),
        None => "Waiting for an answer".to_owned(),
    };
    let delivery = |kind: &'static str, agent: Option<&AgentId>| crate::webhook::Delivery {
        kind,
        id: match agent {
            Some(agent) => format!("{id}/{agent}"),
            None => format!("{id}/breach"),
        },
        agent: agent.map(|a| a.to_string()),
        tenant: tenant.to_string(),
        conversation: frame.conversation.to_string(),
        seq: frame.seq,
        at: now,
        author: None,
        content: chathub_domain::MessageContent::Text { text: text.clone() },
        alert: Some(frame.clone()),
        job: None,
    };
    for agent in offline {
        webhook.enqueue(delivery("alert", Some(agent)));
    }
    if frame.level == AlertLevel::Breach {
        webhook.enqueue(delivery("breach", None));
    }
}

/// The tenant's unanswered conversations by age now (gauges: how many wait under 1 min,
/// 1–5 min, 5–15 min, 15 min or more, and the oldest's age).
fn observe_ages(tenant: &TenantId, waiting: &[QueueEntry], now: u64) {
    const BANDS: [(&str, u64); 4] = [
        ("lt_1m", 60_000),
        ("1m_5m", 300_000),
        ("5m_15m", 900_000),
        ("ge_15m", u64::MAX),
    ];
    let mut counts = [0u64; 4];
    let mut oldest = 0u64;
    for e in waiting {
        let age = now.saturating_sub(e.since);
        oldest = oldest.max(age);
        let band = BANDS
            .iter()
            .position(|(_, under)| age < *under)
            .unwrap_or(3);
        counts[band] += 1;
    }
    for ((name, _), count) in BANDS.iter().zip(counts) {
        ::metrics::gauge!(metrics::UNANSWERED_BY_AGE, "tenant" => tenant.to_string(), "age" => *name)
            .set(count as f64);
    }
    ::metrics::gauge!(metrics::UNANSWERED_OLDEST, "tenant" => tenant.to_string())
        .set(oldest as f64 / 1000.0);
}

/// What an agent's session remembers of its own recent takes, so that an alert still in
/// flight when the take's answer was written is dropped (the other sessions are fenced
/// by the order of the queue frame; see the module docs). Empty, and no allocation, for
/// sessions that took nothing; at most [`FENCE_LEN`] takes of the last [`FENCE_KEEP`]
/// (an alert is in flight for far less: the time of a pub/sub delivery).
#[derive(Debug, Default)]
pub(crate) struct AlertFence(Vec<(ConversationId, u64, std::time::Instant)>);

/// Takes an agent's session remembers for its fence.
const FENCE_LEN: usize = 1_024;
/// How long a take is remembered for its fence.
const FENCE_KEEP: std::time::Duration = std::time::Duration::from_secs(30);

impl AlertFence {
    /// Remembers what `reply` (to this session's request) says left the queue: a send
    /// (a take above all) or a status change whose conversation is not unanswered after
    /// it. Before the reply is written, so no alert of the wait it ended follows it.
    pub(crate) fn after(&mut self, reply: &chathub_protocol::Reply) {
        use chathub_protocol::Reply;
        let (conversation, seq, status) = match reply {
            Reply::Send(ack) => (&ack.conversation, ack.seq, ack.status),
            Reply::Finish(v) | Reply::Transfer(v) | Reply::Release(v) => {
                (&v.conversation, v.state.seq, v.state.status)
            }
            _ => return,
        };
        if status != Status::Unanswered {
            self.moved(conversation, seq, std::time::Instant::now());
        }
    }

    /// This session's command left `conversation` out of the queue at `seq`, at `now`.
    fn moved(&mut self, conversation: &ConversationId, seq: u64, now: std::time::Instant) {
        let list = &mut self.0;
        // The usual case, a reply in a conversation already remembered: no allocation.
        if let Some(known) = list.iter_mut().find(|(c, ..)| c == conversation) {
            known.1 = known.1.max(seq);
            known.2 = now;
            return;
        }
        list.retain(|(.., at)| now.duration_since(*at) < FENCE_KEEP);
        if list.len() >= FENCE_LEN {
            // The least recently touched goes.
            if let Some(oldest) = list
                .iter()
                .enumerate()
                .min_by_key(|(_, (.., at))| *at)
                .map(|(i, _)| i)
            {
                list.swap_remove(oldest);
            }
        }
        list.push((conversation.clone(), seq, now));
    }

    /// Whether an alert (MessagePack frame) is stale for this session: about a wait its
    /// own command ended.
    pub(crate) fn drops(&self, msgpack: &[u8]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let Ok(chathub_protocol::ServerFrame::Alert(alert)) =
            chathub_protocol::Codec::MsgPack.decode_server(msgpack)
        else {
            return false;
        };
        self.0
            .iter()
            .any(|(c, seq, _)| *c == alert.conversation && alert.seq < *seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathub_protocol::{Codec, Reply, SendAck, ServerFrame};

    fn alert(conversation: &ConversationId, seq: u64) -> Vec<u8> {
        let frame = ServerFrame::Alert(AlertFrame {
            conversation: conversation.clone(),
            epoch: 0,
            seq,
            since: 1,
            step: 0,
            occurrence: 0,
            level: AlertLevel::Reminder,
            preview: None,
        });
        Codec::MsgPack.encode_server(&frame).unwrap().to_vec()
    }

    fn sent(conversation: &ConversationId, seq: u64, status: Status) -> Reply {
        Reply::Send(SendAck {
            conversation: conversation.clone(),
            seq,
            status,
            owner: None,
            epoch: 1,
        })
    }

    #[test]
    fn a_take_fences_the_alerts_of_the_wait_it_ended_only() {
        let (a, b) = (
            ConversationId::new("a").unwrap(),
            ConversationId::new("b").unwrap(),
        );
        let mut fence = AlertFence::default();
        assert!(!fence.drops(&alert(&a, 3)));
        // A send that leaves it unanswered (an agent cannot, but a status reply may) fences nothing.
        fence.after(&sent(&a, 4, Status::Unanswered));
        assert!(!fence.drops(&alert(&a, 3)));
        fence.after(&sent(&a, 4, Status::Active));
        assert!(fence.drops(&alert(&a, 3)));
        // A later wait (a new cycle, a later seq) is not fenced, nor another conversation.
        assert!(!fence.drops(&alert(&a, 6)));
        assert!(!fence.drops(&alert(&b, 1)));
        // Bounded: the least recently touched goes first.
        for i in 0..FENCE_LEN {
            let c = ConversationId::new(format!("c{i}")).unwrap();
            fence.after(&sent(&c, 2, Status::Active));
        }
        assert_eq!(fence.0.len(), FENCE_LEN);
        assert!(!fence.drops(&alert(&a, 3)));
        // And forgotten after a while.
        let later = std::time::Instant::now() + FENCE_KEEP;
        fence.moved(&b, 9, later);
        assert_eq!(fence.0.len(), 1);
        assert!(fence.drops(&alert(&b, 8)));
    }
}
