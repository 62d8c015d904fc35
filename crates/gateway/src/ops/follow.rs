//! Following a conversation: `subscribe` (subscribe-then-replay), `unsubscribe`, `open`,
//! `history`; and the history replays that a resume and a gap repair write.

use super::{Connection, Ctx, Failure, store_failed};
use crate::Backend;
use chathub_broker::Channel;
use chathub_domain::{ConversationId, ConversationState, Event};
use chathub_protocol::{
    ConversationView, ErrorCode, EventFrame, HistoryPage, Opened, ReadMark, Reply, RetentionPolicy,
    ServerFrame, Subscribed,
};
use chathub_store::{ConversationStore, HistoryRange, HistorySlice};
use std::collections::{HashMap, HashSet};

/// Events read from history per round trip while replaying or repairing a gap.
const HISTORY_CHUNK: usize = 256;

/// A followed conversation.
pub(crate) struct Subscription {
    /// The conversation.
    pub(crate) conversation: ConversationId,
    /// The last `seq` written to the client: later live events must continue from here.
    pub(crate) last_seq: u64,
}

/// The conversations one connection follows.
#[derive(Default)]
pub(crate) struct Follows {
    /// By channel.
    pub(crate) subs: HashMap<Channel, Subscription>,
    /// Followed conversations whose catch-up from history failed and is retried.
    pub(crate) pending_resync: HashSet<Channel>,
}

/// What [`write_history`] wrote.
pub(crate) struct Written {
    /// How many events were written.
    pub(crate) count: u64,
    /// Whether events the caller may see are missing from what was read: older ones
    /// no longer kept (the first event read is later than the one asked for), or left
    /// out by the tenant's retention policy. Agents-only events an end user never sees
    /// are not missing.
    pub(crate) truncated: bool,
}

/// `subscribe`. Subscribe-then-replay: follow the live channel first (events queue in the
/// outbox), then write history after `since`, then let the live events through, skipping
/// every `seq` already written. No gap, no duplicate.
pub(crate) async fn subscribe<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    conversation: Option<ConversationId>,
    since: Option<u64>,
    history_id: Option<String>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let channel = Channel::conversation(&cx.identity.tenant, &conversation);
    let max = cx.node.config.limits.max_subscriptions;
    let subs = &conn.follows().subs;
    if !subs.contains_key(&channel) && subs.len() >= max {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("at most {max} subscriptions per connection"),
        ));
    }
    conn.join(&channel).await.map_err(|e| {
        tracing::warn!(error = %e, "subscribe failed");
        ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "subscribe").increment(1);
        Failure::new(ErrorCode::Unavailable, "cannot subscribe now; retry")
    })?;
    let state = cx
        .node
        .backend
        .store()
        .state(&cx.identity.tenant, &conversation)
        .await
        .map_err(store_failed)?;
    let already = conn.follows().subs.get(&channel).map(|s| s.last_seq);
    let ours = match (since, history_id.as_deref()) {
        (Some(_), Some(theirs)) if !theirs.is_empty() => cx.node.backend.current_history_id().await,
        _ => None,
    };
    let plan = resume_plan(since, history_id.as_deref(), ours.as_deref(), state.seq);
    let retention = retention(cx).await?;
    let (last, replayed, truncated) = match plan {
        Resume::Lost | Resume::Live => {
            (already.unwrap_or(0).max(state.seq), 0, plan == Resume::Lost)
        }
        Resume::Replay { after } => {
            let mut last = after;
            let written = write_history(cx, conn, &conversation, &mut last, None).await?;
            let truncated = written.truncated;
            let last = last.max(state.seq).max(already.unwrap_or(0));
            (last, written.count, truncated)
        }
    };
    let lost = plan == Resume::Lost;
    if since.is_some() {
        let outcome = match (lost, truncated, replayed) {
            (true, _, _) => "lost",
            (_, true, _) => "truncated",
            (_, _, 0) => "no_gap",
            _ => "gap",
        };
        ::metrics::counter!(crate::metrics::RESUMES, "outcome" => outcome).increment(1);
    }
    conn.follows().subs.insert(
        channel,
        Subscription {
            conversation: conversation.clone(),
            last_seq: last,
        },
    );
    Ok(Reply::Subscribe(Subscribed {
        view: ConversationView {
            conversation,
            state: ConversationState { seq: last, ..state },
        },
        replayed,
        history_truncated: truncated,
        history_lost: lost,
        retention,
    }))
}

/// What a `subscribe` must do before going live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Nothing to replay: no `since`, or the client is up to date.
    Live,
    /// Replay every event after this `seq`.
    Replay {
        /// The client's last `seq`.
        after: u64,
    },
    /// The history the client saw is gone: the server's history id changed (data lost;
    /// new events may already reuse the old seqs) or the client is ahead of the server.
    Lost,
}

/// Decides a resume from the client's `since` and `history_id`, the server's history id
/// (`ours`, read only when the client gave one) and the conversation's last `seq`.
pub(crate) fn resume_plan(
    since: Option<u64>,
    theirs: Option<&str>,
    ours: Option<&str>,
    last_seq: u64,
) -> Resume {
    let Some(since) = since else {
        return Resume::Live;
    };
    if since > last_seq {
        return Resume::Lost;
    }
    let changed = match (theirs, ours) {
        (Some(theirs), Some(ours)) => !theirs.is_empty() && !ours.is_empty() && ours != theirs,
        _ => false,
    };
    if changed {
        Resume::Lost
    } else if since == last_seq {
        Resume::Live
    } else {
        Resume::Replay { after: since }
    }
}

/// Whether a replay after `after` whose first event was `first` skipped events: trimmed
/// history shows as a first event later than the one asked for.
pub(crate) fn replay_truncated(after: u64, first: Option<u64>) -> bool {
    first.is_some_and(|first| first > after + 1)
}

/// `unsubscribe`.
pub(crate) async fn unsubscribe<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    conversation: Option<ConversationId>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let channel = Channel::conversation(&cx.identity.tenant, &conversation);
    if conn.follows().subs.remove(&channel).is_some() {
        conn.follows().pending_resync.remove(&channel);
        conn.leave(&channel).await;
    }
    Ok(Reply::Unsubscribe {})
}

/// `open`: the conversation's state and read marks.
pub(crate) async fn open<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let store = cx.node.backend.store();
    let tenant = &cx.identity.tenant;
    let state = store
        .state(tenant, &conversation)
        .await
        .map_err(store_failed)?;
    let reads = store
        .reads(tenant, &conversation)
        .await
        .map_err(store_failed)?;
    Ok(Reply::Open(Opened {
        view: ConversationView {
            conversation,
            state,
        },
        reads: reads
            .into_iter()
            .map(|(by, seq)| ReadMark {
                by: by.author(),
                seq,
            })
            .collect(),
    }))
}

/// `history`: one page, before or after a `seq`, or the newest.
pub(crate) async fn history<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u32>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let limit = cx.page_size(limit)?;
    let range = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(Failure::bad_request("give `before` or `after`, not both"));
        }
        (Some(before), None) => HistoryRange::Before { before, limit },
        (None, Some(after)) => HistoryRange::After { after, limit },
        (None, None) => HistoryRange::Latest { limit },
    };
    let retention = retention(cx).await?;
    let (slice, dropped) =
        kept_history(cx, &conversation, range, retention, Audience::of(cx)).await?;
    // Reaching back to the oldest kept event, with older ones gone.
    let earlier_removed = !matches!(range, HistoryRange::After { .. })
        && !slice.has_more
        && slice.events.first().map_or(dropped, |e| e.seq > 1);
    // A page must fit the socket's outbound budget in any encoding, or the legitimate
    // reply would kill its socket: cut it short (keeping the side nearest the cursor)
    // and say `has_more`.
    let budget = cx
        .node
        .config
        .limits
        .outbox_bytes
        .saturating_sub(REPLY_OVERHEAD);
    let newest_side = !matches!(range, HistoryRange::After { .. });
    let (events, cut) = fit_page(slice.events, budget, newest_side);
    Ok(Reply::History(HistoryPage {
        conversation,
        events,
        has_more: slice.has_more || cut,
        earlier_removed: earlier_removed && !cut,
        retention,
    }))
}

/// The tenant's retention policy now, with its cut-off (ms), when it has one.
pub(crate) async fn retention<K: Backend>(
    cx: &Ctx<'_, K>,
) -> Result<Option<RetentionPolicy>, Failure> {
    let settings = cx
        .node
        .settings(&cx.identity.tenant)
        .await
        .map_err(store_failed)?;
    Ok(settings.retention_days.map(|days| RetentionPolicy {
        days,
        cutoff: crate::retention::cutoff(
            crate::auth::now_millis(),
            days,
            cx.node.config.retention.day,
        ),
    }))
}

/// Who a read of history is for: agents see every event; an end user never sees an
/// agents-only one (a private note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Agents and admins.
    Agents,
    /// The conversation's end user (or what is handed to them: their export).
    EndUser,
}

impl Audience {
    /// The audience of the caller.
    pub(crate) fn of<K: Backend>(cx: &Ctx<'_, K>) -> Audience {
        if cx.is_end_user() {
            Audience::EndUser
        } else {
            Audience::Agents
        }
    }

    /// Whether this audience may see `event`.
    pub(crate) fn sees(self, event: &Event) -> bool {
        self == Audience::Agents || !event.body.is_agents_only()
    }
}

/// A slice of history as `audience` may see it: without the events before
/// `retention`'s cut-off (which the next retention sweep deletes; until then no read
/// path serves them) and, for an end user, without agents-only events; and whether any
/// were left out for the cut-off. Events are recorded in time order, so those past the
/// cut-off are the oldest: a backward page ends there. A page left empty reads on in
/// its direction (each read moves past a page: it ends).
pub(crate) async fn kept_history<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    range: HistoryRange,
    retention: Option<RetentionPolicy>,
    audience: Audience,
) -> Result<(HistorySlice, bool), Failure> {
    let kept = kept_reading(cx, conversation, range, retention, audience).await?;
    Ok((kept.slice, kept.dropped))
}

/// What [`kept_reading`] read.
pub(crate) struct Kept {
    /// The events the audience may see.
    pub(crate) slice: HistorySlice,
    /// Whether events past the retention cut-off were left out.
    pub(crate) dropped: bool,
    /// The first `seq` read (seen or left out).
    pub(crate) first_read: Option<u64>,
    /// The last `seq` read (seen or left out), reading forwards.
    pub(crate) through: Option<u64>,
}

/// [`kept_history`], also saying how far a forward read went (past the events left
/// out: a replay moves on past notes an end user never sees).
pub(crate) async fn kept_reading<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    mut range: HistoryRange,
    retention: Option<RetentionPolicy>,
    audience: Audience,
) -> Result<Kept, Failure> {
    let store = cx.node.backend.store();
    let cutoff = retention.map_or(0, |r| r.cutoff);
    let mut dropped = false;
    let mut through = None;
    let mut first_read = None;
    loop {
        let slice = store
            .history(&cx.identity.tenant, conversation, range)
            .await
            .map_err(store_failed)?;
        let (Some(first), Some(last)) = (slice.events.first(), slice.events.last()) else {
            return Ok(Kept {
                slice,
                dropped,
                first_read,
                through,
            });
        };
        let (first, last) = (first.seq, last.seq);
        first_read.get_or_insert(first);
        if matches!(range, HistoryRange::After { .. }) {
            through = Some(last);
        }
        let old = slice.events.iter().take_while(|e| e.at < cutoff).count();
        dropped |= old > 0;
        // Backwards, everything before what is past the cut-off is older still.
        let backwards = !matches!(range, HistoryRange::After { .. });
        let has_more = slice.has_more && !(backwards && old > 0);
        let events: Vec<Event> = slice
            .events
            .into_iter()
            .skip(old)
            .filter(|e| audience.sees(e))
            .collect();
        if !events.is_empty() || !has_more {
            return Ok(Kept {
                slice: HistorySlice { events, has_more },
                dropped,
                first_read,
                through,
            });
        }
        range = match range {
            HistoryRange::After { limit, .. } => HistoryRange::After { after: last, limit },
            HistoryRange::Latest { limit } | HistoryRange::Before { limit, .. } => {
                HistoryRange::Before {
                    before: first,
                    limit,
                }
            }
        };
    }
}

/// Room kept in a reply for everything but its events.
const REPLY_OVERHEAD: usize = 1024;

/// Keeps as many of `events` (oldest first) as fit in `budget` bytes, measured in JSON
/// (never smaller than MessagePack for these frames, so the page fits either encoding):
/// the newest ones when `newest_side` (a page read backwards), else the oldest. Returns
/// the kept events and whether any was cut. At least one event is kept: a single event
/// always fits, since none is stored larger than a socket can receive.
pub(crate) fn fit_page(
    mut events: Vec<Event>,
    budget: usize,
    newest_side: bool,
) -> (Vec<Event>, bool) {
    let size = |e: &Event| serde_json::to_vec(e).map_or(usize::MAX, |b| b.len() + 1);
    let mut used = 0;
    let mut keep = 0;
    let order: Box<dyn Iterator<Item = &Event>> = if newest_side {
        Box::new(events.iter().rev())
    } else {
        Box::new(events.iter())
    };
    for event in order {
        let n = size(event);
        if keep > 0 && used + n > budget {
            break;
        }
        used = used.saturating_add(n);
        keep += 1;
    }
    let cut = keep < events.len();
    if cut {
        if newest_side {
            events.drain(..events.len() - keep);
        } else {
            events.truncate(keep);
        }
    }
    (events, cut)
}

/// Writes the retained events with `*after < seq < before` (no upper bound when `before`
/// is `None`) to `conn`, oldest first, reading history in chunks; `*after` advances to
/// each event written, so a failure part-way leaves it at the last one sent.
pub(crate) async fn write_history<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    conversation: &ConversationId,
    after: &mut u64,
    before: Option<u64>,
) -> Result<Written, Failure> {
    let mut written = Written {
        count: 0,
        truncated: false,
    };
    let retention = retention(cx).await?;
    let mut first_round = true;
    loop {
        let range = HistoryRange::After {
            after: *after,
            limit: HISTORY_CHUNK,
        };
        let kept = kept_reading(cx, conversation, range, retention, Audience::of(cx)).await?;
        if first_round {
            written.truncated = kept.dropped || replay_truncated(*after, kept.first_read);
            first_round = false;
        }
        let more = kept.slice.has_more;
        for event in kept.slice.events {
            if let Some(b) = before.filter(|b| event.seq >= *b) {
                // Everything before `before` was read: what was not written is unseen.
                *after = (*after).max(b.saturating_sub(1));
                return Ok(written);
            }
            let seq = event.seq;
            conn.feed(&event_frame(conversation, event)).await?;
            written.count += 1;
            *after = seq;
        }
        // Past what this audience does not see (notes, for an end user), up to `before`.
        if let Some(through) = kept.through {
            let through = before.map_or(through, |b| through.min(b.saturating_sub(1)));
            *after = (*after).max(through);
        }
        if !more {
            return Ok(written);
        }
    }
}

/// The frame of one event read from history (encoded for one connection only).
fn event_frame(conversation: &ConversationId, event: Event) -> ServerFrame {
    ServerFrame::Event(EventFrame {
        conversation: conversation.clone(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_replays_only_what_the_client_missed() {
        assert_eq!(resume_plan(None, None, None, 7), Resume::Live);
        assert_eq!(resume_plan(Some(7), None, None, 7), Resume::Live);
        assert_eq!(
            resume_plan(Some(3), None, None, 7),
            Resume::Replay { after: 3 }
        );
        assert_eq!(
            resume_plan(Some(0), Some("h1"), Some("h1"), 7),
            Resume::Replay { after: 0 }
        );
    }

    #[test]
    fn a_resume_is_lost_when_history_changed_or_the_client_is_ahead() {
        assert_eq!(resume_plan(Some(8), None, None, 7), Resume::Lost);
        assert_eq!(
            resume_plan(Some(3), Some("old"), Some("new"), 7),
            Resume::Lost
        );
        // The same seq under another history is not "up to date".
        assert_eq!(
            resume_plan(Some(7), Some("old"), Some("new"), 7),
            Resume::Lost
        );
        // An id the server cannot read now, or an empty one, proves nothing.
        assert_eq!(
            resume_plan(Some(3), Some("old"), None, 7),
            Resume::Replay { after: 3 }
        );
        assert_eq!(
            resume_plan(Some(3), Some(""), Some("new"), 7),
            Resume::Replay { after: 3 }
        );
    }

    fn message(seq: u64, text: &str) -> Event {
        Event {
            seq,
            at: 0,
            body: chathub_domain::EventBody::Message {
                author: chathub_domain::Author {
                    role: chathub_domain::Role::EndUser,
                    id: "u".into(),
                },
                client_msg_id: None,
                content: chathub_domain::MessageContent::Text { text: text.into() },
            },
            amended: None,
        }
    }

    #[test]
    fn a_page_is_cut_to_its_budget_on_the_cursors_side() {
        let events: Vec<Event> = (1..=10).map(|n| message(n, &"\"".repeat(100))).collect();
        // Sizes differ by a byte with the seq digits: a little room for that.
        let one = serde_json::to_vec(&events[0]).unwrap().len() + 1;
        let seqs = |e: &[Event]| e.iter().map(|e| e.seq).collect::<Vec<_>>();
        // Read backwards: the newest ones stay.
        let (kept, cut) = fit_page(events.clone(), one * 3 + 10, true);
        assert!(cut);
        assert_eq!(seqs(&kept), [8, 9, 10]);
        // Read forwards: the oldest ones stay.
        let (kept, cut) = fit_page(events.clone(), one * 3 + 10, false);
        assert!(cut);
        assert_eq!(seqs(&kept), [1, 2, 3]);
        // Room for all: nothing cut; no room at all: still one.
        let (kept, cut) = fit_page(events.clone(), one * 100, true);
        assert!(!cut && kept.len() == 10);
        let (kept, cut) = fit_page(events, 1, true);
        assert!(cut);
        assert_eq!(seqs(&kept), [10]);
    }

    #[test]
    fn a_replay_starting_late_was_truncated() {
        assert!(!replay_truncated(3, Some(4)));
        assert!(!replay_truncated(3, None));
        assert!(replay_truncated(3, Some(9)));
        assert!(replay_truncated(0, Some(2)));
    }
}
