//! `transcript` (end users their own, agents any of the tenant's; the admin API's
//! `GET /admin/v1/conversations/{id}/transcript`): a conversation's messages, ownership
//! timeline and engagements, as JSON, text or HTML.

use super::{Ctx, Failure, store_failed};
use crate::Backend;
use chathub_domain::engagement::HistoryAction;
use chathub_domain::{Author, ConversationId, EventBody, MessageContent, Role};
use chathub_protocol::{
    ErrorCode, TimelineEntry, TranscriptEngagement, TranscriptMessage, TranscriptReply,
    TranscriptSurvey,
};
use chathub_store::{ConversationStore, HistoryRange, WorkspaceStore};
use std::fmt::Write as _;

/// Events a transcript over the socket may hold (its reply must fit the socket's
/// outbound budget); past it, `too_large`: use the admin API.
pub(crate) const SOCKET_MAX_EVENTS: usize = 5_000;
/// Events a transcript from the admin API may hold.
pub(crate) const ADMIN_MAX_EVENTS: usize = 200_000;
/// History is read in pages of this many events.
const PAGE: usize = 200;

/// How a transcript is rendered besides its structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Readable plain text.
    Text,
    /// A self-contained HTML page (no scripts, everything escaped).
    Html,
}

impl Format {
    /// Parses a request's `format`: absent or `json` (the structure only), `text` or
    /// `html`.
    pub(crate) fn parse(given: Option<&str>) -> Result<Option<Format>, Failure> {
        match given {
            None | Some("json") => Ok(None),
            Some("text") => Ok(Some(Format::Text)),
            Some("html") => Ok(Some(Format::Html)),
            Some(other) => Err(Failure::bad_request(format!(
                "invalid `format` {other:?}: `json`, `text` or `html`"
            ))),
        }
    }
}

/// `transcript`: the conversation's record as `audience` may see it (and its rendering
/// in `format`), with at most `max_events` events. Agents' transcripts hold the private
/// notes (kind `note`); an end user's never do.
pub(crate) async fn transcript<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    format: Option<Format>,
    max_events: usize,
    audience: super::follow::Audience,
) -> Result<TranscriptReply, Failure> {
    let conversation = cx.scope(conversation)?;
    let tenant = &cx.identity.tenant;
    let store = cx.node.backend.store();
    let state = store
        .state(tenant, &conversation)
        .await
        .map_err(store_failed)?;
    let retention = super::follow::retention(cx).await?;
    let mut reply = TranscriptReply {
        conversation: conversation.clone(),
        generated_at: crate::auth::now_millis(),
        state,
        complete: true,
        retention,
        messages: Vec::new(),
        timeline: Vec::new(),
        engagements: Vec::new(),
        surveys: Vec::new(),
        rendered: None,
    };
    let mut after = 0;
    let mut events = 0;
    loop {
        let range = HistoryRange::After { after, limit: PAGE };
        let (page, dropped) =
            super::follow::kept_history(cx, &conversation, range, retention, audience).await?;
        if after == 0 && (dropped || page.events.first().is_some_and(|e| e.seq > 1)) {
            reply.complete = false;
        }
        events += page.events.len();
        if events > max_events {
            return Err(Failure::new(
                ErrorCode::TooLarge,
                format!(
                    "the conversation has more than {max_events} events for one transcript here"
                ),
            ));
        }
        for event in page.events {
            after = event.seq;
            match event.body {
                EventBody::Message {
                    author, content, ..
                } => {
                    let mut file = None;
                    let (kind, text) = match content {
                        MessageContent::Text { text } => ("text", text),
                        MessageContent::Removed {} => ("removed", String::new()),
                        MessageContent::Attachment { attachment } => {
                            let name = attachment.name.clone();
                            file = Some(attachment);
                            ("attachment", name)
                        }
                        MessageContent::Engagement { engagement } => {
                            reply.engagements.push(TranscriptEngagement {
                                at: event.at,
                                action: "sent".into(),
                                id: engagement.id,
                                engagement_type: engagement.engagement_type,
                                name: engagement.name.clone(),
                                seq: Some(event.seq),
                            });
                            ("engagement", engagement.name)
                        }
                    };
                    reply.messages.push(TranscriptMessage {
                        seq: event.seq,
                        at: event.at,
                        author,
                        kind: kind.into(),
                        text,
                        attachment: file,
                        amended: event.amended,
                    });
                }
                EventBody::Note { author, text, .. } => reply.messages.push(TranscriptMessage {
                    seq: event.seq,
                    at: event.at,
                    author,
                    kind: "note".into(),
                    text,
                    attachment: None,
                    amended: None,
                }),
                // The bot's summary, with what it collected, on one line.
                EventBody::Handoff {
                    author,
                    summary,
                    fields,
                } => {
                    let mut text = summary;
                    for f in &fields {
                        text.push_str(&format!("; {}: {}", f.name, f.value));
                    }
                    reply.messages.push(TranscriptMessage {
                        seq: event.seq,
                        at: event.at,
                        author,
                        kind: "handoff".into(),
                        text,
                        attachment: None,
                        amended: None,
                    });
                }
                EventBody::Survey { prompt } => reply.surveys.push(TranscriptSurvey {
                    seq: event.seq,
                    at: event.at,
                    prompt,
                    answered_at: None,
                    rating: None,
                    comment: None,
                }),
                EventBody::SurveyAnswered {
                    survey,
                    rating,
                    comment,
                    reward,
                    ..
                } => {
                    if let Some(asked) = reply.surveys.iter_mut().find(|s| s.seq == survey) {
                        asked.answered_at = Some(event.at);
                        asked.rating = Some(rating);
                        asked.comment = comment;
                    }
                    if let Some(reward) = reward {
                        reply.engagements.push(TranscriptEngagement {
                            at: event.at,
                            action: "granted".into(),
                            id: reward.id,
                            engagement_type: reward.engagement_type,
                            name: reward.name,
                            seq: Some(event.seq),
                        });
                    }
                }
                // The business hours' reply, as the end user read it.
                EventBody::AutoReply { text, .. } => reply.messages.push(TranscriptMessage {
                    seq: event.seq,
                    at: event.at,
                    author: chathub_domain::Author {
                        role: chathub_domain::Role::Admin,
                        id: crate::hours::AUTO_REPLY_AUTHOR.to_owned(),
                    },
                    kind: "auto_reply".into(),
                    text,
                    attachment: None,
                    amended: None,
                }),
                // Folded into their messages above (history shows them amended).
                EventBody::Edited { .. }
                | EventBody::Unsent { .. }
                | EventBody::Redacted { .. } => {}
                EventBody::AttachmentChecked { attachment, status } => {
                    // The file's final standing, on the message that sent it.
                    if let Some(card) = reply
                        .messages
                        .iter_mut()
                        .rev()
                        .filter_map(|m| m.attachment.as_mut())
                        .find(|card| card.id == attachment)
                    {
                        card.status = status;
                    }
                }
                EventBody::Status {
                    status,
                    owner,
                    cause,
                    previous_owner,
                    by,
                    ..
                } => reply.timeline.push(TimelineEntry {
                    seq: event.seq,
                    at: event.at,
                    cause,
                    status,
                    owner,
                    previous_owner,
                    by,
                }),
            }
        }
        if !page.has_more {
            break;
        }
    }
    // What the end user redeemed (the conversation is the end user's own).
    let user = conversation.end_user();
    let workspace = cx.node.backend.workspace();
    let mut before: Option<String> = None;
    loop {
        let page = workspace
            .history(tenant, &user, None, before.as_deref(), PAGE)
            .await
            .map_err(store_failed)?;
        for event in page.events {
            // Nothing older than the tenant's policy, here either.
            let kept = retention.is_none_or(|r| event.at >= r.cutoff);
            if event.action == HistoryAction::Redeemed && kept {
                reply.engagements.push(TranscriptEngagement {
                    at: event.at,
                    action: "redeemed".into(),
                    id: event.engagement.unwrap_or(event.id),
                    engagement_type: event.engagement_type,
                    name: event.title,
                    seq: None,
                });
            }
        }
        match page.next_cursor {
            Some(next) if reply.engagements.len() <= max_events => before = Some(next),
            _ => break,
        }
    }
    reply.engagements.sort_by_key(|e| (e.at, e.seq));
    reply.rendered = format.map(|f| match f {
        Format::Text => text(&reply),
        Format::Html => html(&reply),
    });
    Ok(reply)
}

/// Refuses a transcript whose reply would not fit the socket's outbound budget (it would
/// close the socket): `too_large`, to be fetched through the admin API.
pub(crate) fn fits_socket<K: Backend>(
    cx: &Ctx<'_, K>,
    reply: &TranscriptReply,
) -> Result<(), Failure> {
    // Room for the reply's envelope; JSON is never smaller than MessagePack here.
    const ENVELOPE: usize = 1024;
    let size = serde_json::to_vec(reply).map_or(usize::MAX, |b| b.len());
    let budget = cx.node.config.limits.outbox_bytes;
    if size.saturating_add(ENVELOPE) > budget {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "the transcript ({size} bytes) is larger than a socket receives ({budget}); \
                 fetch it through the admin API"
            ),
        ));
    }
    Ok(())
}

fn when(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn who(author: &Author) -> String {
    let role = match author.role {
        Role::EndUser => "end user",
        Role::Agent => "agent",
        Role::Admin => "admin",
        Role::Bot => "bot",
    };
    format!("{} ({role})", author.id)
}

/// A size as people read it: `820 B`, `14.2 KB`, `3.1 MB`.
fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// One line per message, status change and redemption, in time order.
fn lines(t: &TranscriptReply) -> Vec<(u64, u64, String)> {
    let mut lines: Vec<(u64, u64, String)> = Vec::new();
    for m in &t.messages {
        let text = match m.kind.as_str() {
            "engagement" => format!("sent the engagement \"{}\"", m.text),
            "note" => format!("(private note, agents only) {}", m.text),
            "handoff" => format!("(handoff summary, agents only) {}", m.text),
            "attachment" => match &m.attachment {
                Some(file) => format!(
                    "sent the file \"{}\" ({}, {})",
                    file.name,
                    file.content_type,
                    human_size(file.size)
                ),
                None => format!("sent the file \"{}\"", m.text),
            },
            "removed" => match &m.amended {
                Some(a) if a.change == chathub_domain::ChangeKind::Redacted => format!(
                    "(message redacted by {}: {})",
                    who(&a.by),
                    a.reason.as_deref().unwrap_or("")
                ),
                _ => "(message unsent)".to_owned(),
            },
            _ if m.amended.is_some() => format!("{} (edited)", m.text),
            _ => m.text.clone(),
        };
        lines.push((m.at, m.seq, format!("{}: {text}", who(&m.author))));
    }
    for s in &t.timeline {
        let by = who(&s.by);
        let line = match (s.cause, &s.owner, &s.previous_owner) {
            (chathub_domain::Cause::Taken, Some(owner), _) => format!("taken by {owner}"),
            (chathub_domain::Cause::TakenOver, Some(owner), Some(previous)) => {
                format!("taken over by {owner} from {previous}")
            }
            (chathub_domain::Cause::Finished, _, Some(previous)) => {
                format!("finished by {by} (owner {previous})")
            }
            (cause, _, _) => format!("{} by {by}", cause_name(cause)),
        };
        lines.push((s.at, s.seq, format!("— {line}")));
    }
    for e in &t.engagements {
        match e.action.as_str() {
            "redeemed" => lines.push((e.at, u64::MAX, format!("— redeemed \"{}\"", e.name))),
            "granted" => lines.push((
                e.at,
                e.seq.unwrap_or(u64::MAX),
                format!("— granted \"{}\" for answering the survey", e.name),
            )),
            _ => {}
        }
    }
    for s in &t.surveys {
        lines.push((s.at, s.seq, format!("— survey asked: {}", s.prompt)));
        if let (Some(at), Some(rating)) = (s.answered_at, s.rating) {
            let comment = s
                .comment
                .as_deref()
                .map_or(String::new(), |c| format!(": {c}"));
            lines.push((
                at,
                s.seq,
                format!("— the end user rated {rating}/5{comment}"),
            ));
        }
    }
    lines.sort_by_key(|l| (l.0, l.1));
    lines
}

fn cause_name(cause: chathub_domain::Cause) -> &'static str {
    use chathub_domain::Cause::*;
    match cause {
        Opened => "opened",
        Reopened => "reopened",
        Taken => "taken",
        TakenOver => "taken over",
        Transferred => "transferred",
        Finished => "finished",
        Disabled => "chat disabled",
        Enabled => "chat enabled",
        Released => "released to the queue",
        HandedOff => "handed off by the bot",
    }
}

fn heading(t: &TranscriptReply) -> (String, String) {
    let owner = t
        .state
        .owner
        .as_ref()
        .map_or(String::new(), |o| format!(", owner {o}"));
    (
        format!("Transcript of conversation {}", t.conversation),
        format!(
            "Generated {}; status {}{owner}; {} messages{}",
            when(t.generated_at),
            t.state.status.as_str(),
            t.messages.len(),
            match (t.complete, t.retention) {
                (true, _) => String::new(),
                (false, Some(r)) => format!(
                    "; earlier messages removed by the retention policy ({} days: before {})",
                    r.days,
                    when(r.cutoff)
                ),
                (false, None) => "; older events are no longer kept".to_owned(),
            }
        ),
    )
}

/// The transcript as readable plain text.
pub(crate) fn text(t: &TranscriptReply) -> String {
    let (title, sub) = heading(t);
    let mut out = format!("{title}\n{sub}\n\n");
    for (at, _, line) in lines(t) {
        let _ = writeln!(out, "[{}] {line}", when(at));
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The transcript as a self-contained HTML page: everything from users escaped, no
/// scripts, no external resources.
pub(crate) fn html(t: &TranscriptReply) -> String {
    let (title, sub) = heading(t);
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font:14px/1.5 system-ui,sans-serif;max-width:48em;margin:2em auto}}\
         time{{color:#666;margin-right:.5em}}li{{list-style:none;margin:.2em 0}}\
         .event{{color:#555;font-style:italic}}</style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n<ul>\n",
        escape(&title),
        escape(&title),
        escape(&sub)
    );
    for (at, _, line) in lines(t) {
        let class = if line.starts_with('—') {
            " class=\"event\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<li{class}><time>{}</time>{}</li>",
            escape(&when(at)),
            escape(&line)
        );
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathub_domain::ConversationState;

    #[test]
    fn html_escapes_what_users_wrote() {
        let t = TranscriptReply {
            conversation: ConversationId::new("ann").unwrap_or_else(|_| unreachable!()),
            generated_at: 0,
            state: ConversationState::default(),
            complete: true,
            retention: None,
            messages: vec![TranscriptMessage {
                seq: 2,
                at: 1_764_000_000_000,
                author: Author {
                    role: Role::EndUser,
                    id: "ann".into(),
                },
                kind: "text".into(),
                text: "<script>alert('x')</script> & more".into(),
                attachment: None,
                amended: None,
            }],
            timeline: vec![],
            engagements: vec![],
            surveys: vec![],
            rendered: None,
        };
        let page = html(&t);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        let plain = text(&t);
        assert!(
            plain.contains("[2025-11-24 16:00:00 UTC] ann (end user): <script>"),
            "{plain}"
        );
    }
}
