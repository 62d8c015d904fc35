//! Messages that change after they were sent: edit, unsend, redact.
//!
//! Each is a new event with its own `seq` about an earlier message (its `target`); the
//! message itself keeps its `seq` and history shows it in its current form: the message
//! [`fold`]ed with its amendments. Rules:
//! - The target must be a message (not a note, a status change or a verdict) of the
//!   conversation, as history shows it now ([`Context::target`]).
//! - **Edit**: only its author (the same participant), only a text message, only within
//!   the tenant's edit window ([`Context::edit_window_ms`], from the message's time; 0:
//!   never), and not once it is removed. An end user cannot while two-way chat is
//!   disabled (they cannot write then); an agent can.
//! - **Unsend**: as an edit, for any kind of message (text, engagement, attachment).
//! - **Redact**: `data.erase` (admins), any message, any time, with a reason; not one
//!   already removed (unsent or redacted: its text is gone already).
//! - Unsend and redact remove the message's content and the texts of its earlier
//!   edits ([`scrub_edit`]): only a tombstone stays.
//!
//! A client converges on one view whether it was live or resumes from before: it applies
//! an amendment to its target only when the amendment's `seq` is greater than the
//! target's `amended.seq` (a replayed message is already folded with its latest one).

use super::{Author, Context, ConversationState, Event, EventBody, MessageContent, Status};
use crate::roles::{Actor, Privilege};
use serde::{Deserialize, Serialize};

/// What an amendment does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Replace the text (the author, within the window).
    Edit {
        /// The new text.
        text: String,
    },
    /// Take the message back (the author, within the window).
    Unsend,
    /// Remove it for good (an admin, any time).
    Redact {
        /// Why.
        reason: String,
    },
}

/// Which amendment a message last had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Its text was edited.
    Edited,
    /// Its author unsent it.
    Unsent,
    /// An admin redacted it.
    Redacted,
}

/// A message's latest amendment, as history shows the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amended {
    /// What happened to it.
    pub change: ChangeKind,
    /// The amendment's own `seq`.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// Who.
    pub by: Author,
    /// A redaction's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Amended {
    /// Whether the message's content is gone (unsent or redacted).
    pub fn removed(&self) -> bool {
        self.change != ChangeKind::Edited
    }
}

/// Whether `actor` wrote a message by `author` (the same participant: an end user, or
/// the same agent whatever its role now).
fn is_author(actor: &Actor, author: &Author) -> bool {
    let me = Author::of(actor);
    me.id == author.id && (me.role == crate::Role::EndUser) == (author.role == crate::Role::EndUser)
}

/// The rules of the module docs: `Ok` when `change` applies to `target`.
pub(super) fn check(
    context: &Context,
    state: &ConversationState,
    actor: &Actor,
    target: u64,
    change: &Change,
    at: u64,
) -> Result<(), super::Refusal> {
    use super::Refusal::{ChatDisabled, Forbidden, InvalidState};
    if let Change::Redact { .. } = change
        && !actor.has(Privilege::DataErase)
    {
        return Err(Forbidden);
    }
    let Some(event) = context
        .target
        .as_ref()
        .filter(|e| e.seq == target && target <= state.seq && state.status != Status::New)
    else {
        return Err(InvalidState);
    };
    let EventBody::Message {
        author, content, ..
    } = &event.body
    else {
        return Err(InvalidState);
    };
    if event.amended.as_ref().is_some_and(Amended::removed) {
        return Err(InvalidState);
    }
    match change {
        Change::Redact { .. } => Ok(()),
        Change::Edit { .. } | Change::Unsend => {
            if !is_author(actor, author) {
                return Err(Forbidden);
            }
            if matches!(change, Change::Edit { .. })
                && !matches!(content, MessageContent::Text { .. })
            {
                return Err(InvalidState);
            }
            if matches!(actor, Actor::EndUser(_))
                && (state.disabled || context.tenant_chat_disabled)
            {
                return Err(ChatDisabled);
            }
            if at.saturating_sub(event.at) > context.edit_window_ms || context.edit_window_ms == 0 {
                return Err(InvalidState);
            }
            Ok(())
        }
    }
}

/// The amendment's event body.
pub fn body(actor: &Actor, target: u64, change: &Change) -> EventBody {
    match change {
        Change::Edit { text } => EventBody::Edited {
            target,
            author: Author::of(actor),
            text: Some(text.clone()),
        },
        Change::Unsend => EventBody::Unsent {
            target,
            author: Author::of(actor),
        },
        Change::Redact { reason } => EventBody::Redacted {
            target,
            by: Author::of(actor),
            reason: reason.clone(),
        },
    }
}

/// Folds `amendment` into `message` (its target): the message as history shows it after
/// the amendment. Returns whether it changed anything (not when `amendment` is not about
/// `message`, is not newer than its latest amendment, or the message is removed).
pub fn fold(message: &mut Event, amendment: &Event) -> bool {
    let (target, change, by, reason, text) = match &amendment.body {
        EventBody::Edited {
            target,
            author,
            text,
        } => (*target, ChangeKind::Edited, author, None, text.as_ref()),
        EventBody::Unsent { target, author } => (*target, ChangeKind::Unsent, author, None, None),
        EventBody::Redacted { target, by, reason } => {
            (*target, ChangeKind::Redacted, by, Some(reason), None)
        }
        _ => return false,
    };
    let EventBody::Message { content, .. } = &mut message.body else {
        return false;
    };
    if target != message.seq
        || message
            .amended
            .as_ref()
            .is_some_and(|a| a.seq >= amendment.seq || a.removed())
    {
        return false;
    }
    match change {
        ChangeKind::Edited => match text {
            Some(text) => *content = MessageContent::Text { text: text.clone() },
            // A scrubbed edit: its message is removed later, nothing to show.
            None => return false,
        },
        ChangeKind::Unsent | ChangeKind::Redacted => *content = MessageContent::Removed {},
    }
    message.amended = Some(Amended {
        change,
        seq: amendment.seq,
        at: amendment.at,
        by: by.clone(),
        reason: reason.cloned(),
    });
    true
}

/// Folds `amendment` into the events it is about among `events` (a view of a
/// conversation): its message ([`fold`]) and, for a removal, the message's earlier
/// edits ([`scrub_edit`]). Other events pass untouched.
pub fn fold_into<'a>(events: impl IntoIterator<Item = &'a mut Event>, amendment: &Event) {
    let Some(target) = target_of(&amendment.body) else {
        return;
    };
    let removal = removes(&amendment.body);
    for event in events {
        if event.seq == target {
            fold(event, amendment);
        } else if removal
            && matches!(event.body, EventBody::Edited { target: t, .. } if t == target)
        {
            scrub_edit(event);
        }
    }
}

/// An edit of a message unsent or redacted since, as history keeps it: without its text.
/// Returns whether it changed anything.
pub fn scrub_edit(edit: &mut Event) -> bool {
    match &mut edit.body {
        EventBody::Edited { text, .. } => text.take().is_some(),
        _ => false,
    }
}

/// The `seq` of the message an amendment event is about (`None` for other events).
pub fn target_of(body: &EventBody) -> Option<u64> {
    match body {
        EventBody::Edited { target, .. }
        | EventBody::Unsent { target, .. }
        | EventBody::Redacted { target, .. } => Some(*target),
        _ => None,
    }
}

/// Whether an amendment event removes its target (unsend, redact).
pub fn removes(body: &EventBody) -> bool {
    matches!(body, EventBody::Unsent { .. } | EventBody::Redacted { .. })
}
