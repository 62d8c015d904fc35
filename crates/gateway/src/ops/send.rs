//! `send`: a message of text, a canned response (filled from the end user's profile) or
//! an engagement the end user is entitled to. An agent's send takes the conversation
//! when it does not own it (the backend decides, fenced by the epoch it saw).

use super::apply::apply;
use super::{Ctx, Failure, not_found, store_failed};
use crate::Backend;
use chathub_domain::canned;
use chathub_domain::{AttachmentId, Command, ConversationId, MessageContent};
use chathub_protocol::{ErrorCode, Reply};
use chathub_store::WorkspaceStore;

/// Whether `content` might encode to more than `budget` bytes: a bound without encoding
/// (no allocation per message); only then is it measured. JSON escapes a byte into at
/// most 6 (`\u00XX`); an engagement card's fields are bounded by the catalogue's limits.
fn encoded_size_may_exceed(content: &MessageContent, budget: usize) -> bool {
    let raw = match content {
        MessageContent::Text { text } => text.len(),
        MessageContent::Engagement { engagement } => {
            engagement.id.len() + engagement.name.len() + engagement.description.len() + 64
        }
        MessageContent::Attachment { attachment } => {
            attachment.id.as_str().len()
                + attachment.name.len()
                + attachment.content_type.len()
                + 128
        }
        MessageContent::Removed {} => 0,
    };
    raw.saturating_mul(6).saturating_add(128) > budget
}

/// Room kept in an event for everything but its content (seq, author, times…).
const EVENT_OVERHEAD: usize = 1024;

/// Longest `client_msg_id`, in bytes.
pub(crate) const MAX_CLIENT_MSG_ID: usize = 64;

/// What a `send` asked to send, before it is resolved into message content.
pub(crate) enum MessageBody {
    /// Plain text.
    Text(String),
    /// A canned response by id.
    Canned(String),
    /// A catalogue engagement by id.
    Engagement(String),
    /// An uploaded attachment by id.
    Attachment(AttachmentId),
}

impl MessageBody {
    /// The body from the request's fields: exactly one of them.
    pub(crate) fn from_fields(
        text: String,
        canned: Option<String>,
        engagement: Option<String>,
        attachment: Option<AttachmentId>,
    ) -> Result<MessageBody, Failure> {
        match (text.is_empty(), canned, engagement, attachment) {
            (false, None, None, None) => Ok(MessageBody::Text(text)),
            (true, Some(id), None, None) => Ok(MessageBody::Canned(id)),
            (true, None, Some(id), None) => Ok(MessageBody::Engagement(id)),
            (true, None, None, Some(id)) => Ok(MessageBody::Attachment(id)),
            (true, None, None, None) => Err(Failure::bad_request("`text` is empty")),
            _ => Err(Failure::bad_request(
                "give exactly one of `text`, `canned`, `engagement`, `attachment`",
            )),
        }
    }
}

/// Refuses an empty or overlong `client_msg_id`.
pub(crate) fn check_client_msg_id(id: Option<&str>) -> Result<(), Failure> {
    if let Some(id) = id
        && (id.is_empty() || id.len() > MAX_CLIENT_MSG_ID)
    {
        return Err(Failure::bad_request(format!(
            "`client_msg_id` must be 1 to {MAX_CLIENT_MSG_ID} bytes"
        )));
    }
    Ok(())
}

/// `send` with `visibility: "agents"`: a private note (agents and admins). It needs no
/// epoch (it takes nothing) and is text only, within the message limits.
pub(crate) async fn note<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    client_msg_id: Option<String>,
    text: String,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let command = note_command(cx, client_msg_id, text).await?;
    write_note(cx, conversation, command).await
}

/// A note's command, once everything about it is checked: who writes it, its key, its
/// text and whom it mentions.
async fn note_command<K: Backend>(
    cx: &Ctx<'_, K>,
    client_msg_id: Option<String>,
    text: String,
) -> Result<Command, Failure> {
    if cx.is_end_user() {
        return Err(super::forbidden("notes are for agents"));
    }
    check_client_msg_id(client_msg_id.as_deref())?;
    check_text(cx, &text)?;
    let mentions = mentioned(&text)?;
    for agent in &mentions {
        let who = chathub_domain::Participant::Agent(agent.clone()).key();
        let known = cx
            .node
            .backend
            .workspace()
            .presence_of(&cx.identity.tenant, &who, crate::auth::now_millis())
            .await
            .map_err(super::store_failed)?;
        if known.is_none() {
            return Err(Failure::bad_request(format!(
                "unknown agent @{agent}: nobody of that id has signed in to this tenant"
            )));
        }
    }
    Ok(Command::Note {
        text,
        client_msg_id,
        mentions,
    })
}

/// Applies a note's command and answers with its acknowledgement.
async fn write_note<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    command: Command,
) -> Result<Reply, Failure> {
    match apply(cx, conversation, command).await?.1 {
        Some(ack) => Ok(Reply::Send(ack)),
        None => Err(Failure::new(
            ErrorCode::Internal,
            "the note was not acknowledged",
        )),
    }
}

/// `send` with a `handover_note` (agents): the message, then the note. The note is
/// written only once the message is (a message that loses its race leaves no note), and
/// a retry with the same `client_msg_id` writes it once (its own key is derived from the
/// message's), so a send answered `unavailable` is completed by retrying it.
pub(crate) async fn send_with_handover<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    client_msg_id: Option<String>,
    body: MessageBody,
    epoch: Option<u64>,
    handover: String,
) -> Result<Reply, Failure> {
    if cx.is_end_user() {
        return Err(super::forbidden("a handover note is for agents"));
    }
    let note_key = match &client_msg_id {
        Some(id) if id.len() + ".handover".len() > MAX_CLIENT_MSG_ID => {
            return Err(Failure::bad_request(format!(
                "with a `handover_note`, `client_msg_id` is at most {} bytes",
                MAX_CLIENT_MSG_ID - ".handover".len()
            )));
        }
        Some(id) => Some(format!("{id}.handover")),
        None => None,
    };
    // Checked before the message goes: a note refused afterwards would leave the
    // take-over unexplained.
    let command = note_command(cx, note_key, handover).await?;
    let target = cx.scope(conversation.clone())?;
    let reply = send(cx, conversation, client_msg_id, body, epoch).await?;
    write_note(cx, target, command).await?;
    Ok(reply)
}

/// Agents a note may mention at most.
pub(crate) const MAX_MENTIONS: usize = 20;

/// The agents `text` mentions: each `@id` at the start or after a space (an e-mail
/// address is not a mention), the id's characters up to the first other one, a
/// sentence's final `.` left out; each once, in order of appearance.
fn mentioned(text: &str) -> Result<Vec<chathub_domain::AgentId>, Failure> {
    let mut found: Vec<chathub_domain::AgentId> = Vec::new();
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        if c == '@' && previous.is_whitespace() {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                .unwrap_or(rest.len());
            let name = rest[..end].trim_end_matches('.');
            if !name.is_empty() {
                let agent = chathub_domain::AgentId::new(name)
                    .map_err(|e| Failure::bad_request(format!("invalid mention @{name}: {e}")))?;
                if !found.contains(&agent) {
                    found.push(agent);
                }
            }
        }
        previous = c;
    }
    if found.len() > MAX_MENTIONS {
        return Err(Failure::bad_request(format!(
            "a note mentions at most {MAX_MENTIONS} agents"
        )));
    }
    Ok(found)
}

/// A text's own limits: not blank, at most `max_text_bytes`, and small enough for a
/// socket to receive.
pub(crate) fn check_text<K: Backend>(cx: &Ctx<'_, K>, text: &str) -> Result<(), Failure> {
    if text.trim().is_empty() {
        return Err(Failure::bad_request("`text` is empty"));
    }
    let max = cx.node.config.limits.max_text_bytes;
    if text.len() > max {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("`text` is {} bytes; the limit is {max}", text.len()),
        ));
    }
    Ok(())
}

/// `send`.
pub(crate) async fn send<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    client_msg_id: Option<String>,
    body: MessageBody,
    epoch: Option<u64>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    check_client_msg_id(client_msg_id.as_deref())?;
    if !cx.is_end_user() && epoch.is_none() {
        return Err(Failure::bad_request(
            "missing field `epoch`: agents send the ownership epoch they saw",
        ));
    }
    let content = content(cx, &conversation, body).await?;
    if let MessageContent::Text { text } = &content {
        check_text(cx, text)?;
    }
    // No event is stored that a client could not receive: a message larger than a
    // socket's outbound budget would close every follower (and every later replay).
    let budget = cx
        .node
        .config
        .limits
        .outbox_bytes
        .saturating_sub(EVENT_OVERHEAD);
    if encoded_size_may_exceed(&content, budget)
        && let size = serde_json::to_vec(&content).map_or(usize::MAX, |b| b.len())
        && size > budget
    {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("the message is {size} bytes; a socket receives at most {budget}"),
        ));
    }
    let pending = match &content {
        MessageContent::Attachment { attachment } if !attachment.status.is_clean() => {
            Some(attachment.id.clone())
        }
        _ => None,
    };
    let command = Command::Send {
        content,
        client_msg_id,
        seen_epoch: if cx.is_end_user() { None } else { epoch },
    };
    let sent = apply(cx, conversation.clone(), command).await?.1;
    if let Some(id) = pending {
        super::attachments::verdict_since_read(cx, &conversation, &id).await;
    }
    match sent {
        Some(ack) => Ok(Reply::Send(ack)),
        None => Err(Failure::new(
            ErrorCode::Internal,
            "send was not acknowledged",
        )),
    }
}

/// Resolves what a `send` asked for into message content: canned responses are filled
/// from the end user's profile, engagements are checked for entitlement.
async fn content<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    body: MessageBody,
) -> Result<MessageContent, Failure> {
    match body {
        MessageBody::Text(text) => Ok(MessageContent::Text { text }),
        MessageBody::Canned(id) => {
            cx.require_agent("send canned")?;
            let ws = cx.node.backend.workspace();
            let t = &cx.identity.tenant;
            let all = ws.canned(t).await.map_err(store_failed)?;
            let found = all
                .into_iter()
                .find(|c| c.id == id)
                .ok_or_else(|| not_found("canned response"))?;
            let profile = ws
                .profile(t, &conversation.end_user())
                .await
                .map_err(store_failed)?
                .unwrap_or_default();
            Ok(MessageContent::Text {
                text: canned::fill(&found.text, &profile, &cx.identity.name),
            })
        }
        MessageBody::Attachment(id) => Ok(MessageContent::Attachment {
            attachment: super::attachments::card(cx, conversation, &id).await?,
        }),
        MessageBody::Engagement(id) => {
            cx.require_agent("send engagement")?;
            let (item, verdict) = super::engagements::entitlements(cx, conversation)
                .await?
                .into_iter()
                .find(|(item, _)| item.id == id)
                .ok_or_else(|| not_found("engagement"))?;
            verdict.map_err(super::engagements::ineligible)?;
            Ok(MessageContent::Engagement {
                engagement: super::engagements::card(item),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_bound_is_never_below_the_encoded_size() {
        for text in ["hi", "\"\"\"\"", "\u{1}\u{2}\u{3}", "héllo ✓"] {
            let content = MessageContent::Text { text: text.into() };
            let size = serde_json::to_vec(&content).unwrap().len();
            // Whatever budget the bound says is safe, the real size is within it.
            assert!(!encoded_size_may_exceed(
                &content,
                size.max(text.len() * 6 + 128)
            ));
            assert!(encoded_size_may_exceed(&content, size - 1));
        }
    }
}

#[cfg(test)]
mod mention_tests {
    use super::mentioned;

    fn names(text: &str) -> Vec<String> {
        mentioned(text)
            .unwrap_or_else(|_| panic!("{text}"))
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect()
    }

    #[test]
    fn mentions_are_at_names_after_a_space() {
        assert_eq!(
            names("@alice please look, and @bob.smith."),
            ["alice", "bob.smith"]
        );
        assert_eq!(names("ask @alice: then @alice again"), ["alice"]);
        assert_eq!(names("mail ann@example.com"), Vec::<String>::new());
        assert_eq!(names("@ alone, @"), Vec::<String>::new());
        let many: String = (0..21).map(|i| format!("@a{i} ")).collect();
        assert!(mentioned(&many).is_err());
    }
}
