//! The conversation state machine: the specification of ownership, status and sequence.
//!
//! [`apply`] is a pure function `(state, actor, command, at) -> outcome`. Every backend
//! applies exactly this (the Redis script re-states it and a differential test holds the
//! two equal); the gateway asks a backend, it never decides.
//!
//! Rules (from the product description):
//! - An end user's message on a `new` or `finished` conversation makes it `unanswered`.
//! - **Take** = an agent's message on a conversation it does not own (unanswered, finished,
//!   new, or active with another owner). It needs `chat.take`, and the epoch the agent saw
//!   must equal the current epoch, otherwise the command loses the race: `Conflict`, and
//!   its message is not delivered.
//! - Every ownership change increments `epoch` (the fencing token).
//! - Only the owner (with `chat.finish`) or an admin (with `chat.finish`) finishes.
//! - Every event gets the next `seq`: `seq` grows by exactly one per event.
//! - While two-way chat is disabled (for the conversation, or tenant-wide), end users
//!   cannot write and agents cannot take; the owner may still write (one-way notices).
//! - Sending an engagement needs `engagement.send`; end users cannot send engagements.
//! - **Erase** (`data.erase`) forgets the conversation: it leaves the counters and nothing
//!   else — status `new`, no owner, chat enabled, the same `seq` (so no `seq` is ever
//!   given twice: a device or console that saw the old events never mistakes new ones
//!   for them) and the epoch moved (every command decided on the old state loses).
//!   A `new` conversation (no event yet, or erased already) has nothing to erase.
//! - **Notes** are agents' and admins' private messages in the thread: they take the
//!   next `seq` like every event and change nothing else (no ownership, no status),
//!   whatever the status (except `new`: there is no thread yet) and whether chat is
//!   disabled or not; end users cannot write them and are never shown them.
//! - **Expire** (`data.erase`: the tenant's retention policy, run by the server) is an
//!   erasure of a conversation idle past the policy, decided on the `seq` the sweep saw:
//!   only while the conversation is still at that `seq` (nothing happened since), so a
//!   message arriving while the sweep runs keeps the conversation alive, never erased
//!   unseen. Otherwise `invalid_state`; a `new` one has nothing to expire.
//! - **Release** (an admin, or the server for the tenant's stall policy, acting as an
//!   admin) gives an active conversation back to the queue: `unanswered`, no owner, the
//!   epoch moved (so the previous owner's commands in flight lose), cause `released`
//!   with a [`ReleaseReason`]. Decided on the epoch and the `seq` the releaser saw: a
//!   moved epoch is a `conflict`, anything since (the owner's reply above all) keeps
//!   the owner (`invalid_state`), so a reply and a release never both win.
//! - **Auto reply** (an admin, or the server outside the tenant's business hours, acting
//!   as an admin) tells the waiting end user when the team is back: an `auto_reply`
//!   event, nothing else changes; only while `unanswered` and at the `seq` the server
//!   saw (`invalid_state` otherwise), so two servers deciding at once record one.
//! - **Bot first**: with the tenant's bot ([`Context::bot`]), an end user's message on a
//!   `new` or `finished` conversation makes it `active`, owned by the bot (the epoch
//!   moves), instead of `unanswered`. A bot ([`Role::Bot`]) writes only where it owns
//!   the conversation, on the epoch it saw: a moved epoch (a human took it over) is a
//!   `conflict`, so a bot's reply in flight never lands after a human's take; anywhere
//!   else it is `forbidden` (a bot never takes). **Handoff** (its owning bot only, on
//!   the epoch it saw) gives it to the humans: `unanswered`, no owner, the epoch moved,
//!   cause `handed_off`, and a `handoff` event with the bot's summary and the fields it
//!   collected, for agents only. A bot may also write notes, finish (with `chat.finish`)
//!   and amend its own messages; it may not transfer, release, disable, erase or expire.
//! - **Amendments** (edit, unsend, redact) are new events about an earlier message:
//!   see [`amend`].
//! - **Survey**: with the tenant's survey on ([`Context::survey`]), a finish also records
//!   a `survey` event after its status event, and the conversation has that survey open
//!   ([`ConversationState::survey`]). Only its end user answers it, once: the answer
//!   closes it, so a second answer is `invalid_state`, as is an answer with none open.
//!   Any status change but a finish closes it too (the cycle it was about is over: the
//!   end user wrote again, an agent took it, an erasure). The answer may carry the
//!   tenant's reward, checked for entitlement by the caller.

use crate::engagement::EngagementType;
use crate::ids::{AgentId, AttachmentId};
use crate::roles::{Actor, Privilege, Role};
use serde::{Deserialize, Serialize};

/// Where a conversation is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No event yet: the conversation does not exist for anyone.
    #[default]
    New,
    /// The end user wrote and no agent has taken it (the queue).
    Unanswered,
    /// An agent owns it.
    Active,
    /// Finished; the end user writing again makes it unanswered.
    Finished,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Unanswered => "unanswered",
            Status::Active => "active",
            Status::Finished => "finished",
        }
    }
}

/// The state of one conversation, everything the rules look at.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationState {
    /// Where it is in its cycle.
    pub status: Status,
    /// The owning agent, present exactly when `status` is `active`.
    pub owner: Option<AgentId>,
    /// Ownership epoch (fencing token): incremented by every ownership change.
    pub epoch: u64,
    /// `seq` of the last event; 0 before the first.
    pub seq: u64,
    /// Whether two-way chat is disabled.
    pub disabled: bool,
    /// The `seq` of the satisfaction survey open for the end user to answer (the one
    /// recorded by the last finish), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<u64>,
}

/// Who wrote a message or caused a change, as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Author {
    /// The author's role.
    pub role: Role,
    /// The author's id (an end user id or an agent id).
    pub id: String,
}

impl Author {
    /// The author for `actor`.
    pub fn of(actor: &Actor) -> Author {
        match actor {
            Actor::EndUser(id) => Author {
                role: Role::EndUser,
                id: id.as_str().to_owned(),
            },
            Actor::Agent { id, .. } => Author {
                role: actor.role(),
                id: id.as_str().to_owned(),
            },
        }
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageContent {
    /// Plain text (canned responses arrive as text, their placeholders filled).
    Text {
        /// The text.
        text: String,
    },
    /// An engagement sent by an agent (needs `engagement.send`).
    Engagement {
        /// What was sent.
        engagement: EngagementCard,
    },
    /// A file (photo, screenshot, document) uploaded and checked before the send; end
    /// users and agents alike. It is a message like text for every rule.
    Attachment {
        /// What was sent.
        attachment: AttachmentCard,
    },
    /// What is left of a message its author unsent or an admin redacted: nothing (its
    /// `amended` says who and when). Never sent; only stored and shown.
    Removed {},
}

impl MessageContent {
    /// A short text for previews and notifications.
    pub fn preview(&self) -> &str {
        match self {
            MessageContent::Text { text } => text,
            MessageContent::Engagement { engagement } => &engagement.name,
            MessageContent::Attachment { attachment } => &attachment.name,
            MessageContent::Removed {} => "",
        }
    }
}

/// A file as shown in the thread. The bytes are not in the event: a participant asks
/// for a short-lived link (`attachment_link`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentCard {
    /// The attachment's id (what links are asked for).
    pub id: AttachmentId,
    /// The file name the sender gave.
    pub name: String,
    /// The type sniffed from the bytes (`image/jpeg`, `application/pdf`…).
    pub content_type: String,
    /// Size of the stored file, in bytes.
    pub size: u64,
    /// Images: width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Images: height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether a small preview image exists (`attachment_link` gives its link).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
    /// Where the file stands with the scanner when the message was sent: `clean` (left
    /// out), `pending` (nobody but its sender may open it until an `attachment_checked`
    /// event says `clean`), `blocked` (never served).
    #[serde(default, skip_serializing_if = "AttachmentStatus::is_clean")]
    pub status: AttachmentStatus,
}

/// An attachment's standing with the scanner (`--attachment-scanner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttachmentStatus {
    /// Checked (or no scanner): anyone in the conversation may open it.
    #[default]
    Clean,
    /// Waiting for the scanner: only its sender may open it.
    Pending,
    /// The scanner refused it: never served to anyone.
    Blocked,
}

impl AttachmentStatus {
    /// Whether it is `clean`.
    pub fn is_clean(&self) -> bool {
        *self == AttachmentStatus::Clean
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentStatus::Clean => "clean",
            AttachmentStatus::Pending => "pending",
            AttachmentStatus::Blocked => "blocked",
        }
    }
}

/// An engagement as shown in the thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementCard {
    /// Catalogue item id (what the end user redeems).
    pub id: String,
    /// Engagement type.
    #[serde(rename = "type")]
    pub engagement_type: EngagementType,
    /// Title.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// What the rules need to know beyond the conversation itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// Two-way chat is disabled for the whole tenant.
    pub tenant_chat_disabled: bool,
    /// How long after a message its author may edit or unsend it, ms (0: never).
    pub edit_window_ms: u64,
    /// For an amendment ([`Command::Amend`]): the current form of its target, as history
    /// shows it (`None`: no such event).
    pub target: Option<Event>,
    /// For a finish: the question of the tenant's satisfaction survey (`None`: the
    /// tenant has none, and a finish records no survey).
    pub survey: Option<String>,
    /// For an end user's message: the tenant's bot, when it answers first (`None`: new
    /// and reopened conversations go to the queue).
    pub bot: Option<AgentId>,
}

/// Why a `status` event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The end user's first message created the conversation.
    Opened,
    /// The end user wrote on a finished conversation.
    Reopened,
    /// An agent took an unanswered, finished or new conversation.
    Taken,
    /// An agent took the conversation over from another agent.
    TakenOver,
    /// The owner or an admin finished it.
    Finished,
    /// An admin disabled two-way chat.
    Disabled,
    /// An admin enabled two-way chat again.
    Enabled,
    /// The owner (or an admin) handed the conversation to a named agent.
    Transferred,
    /// Given back to the queue (an admin, or the tenant's stall policy): see
    /// [`ReleaseReason`].
    Released,
    /// The tenant's bot handed it to the humans (a `handoff` event follows).
    HandedOff,
}

/// Why a conversation was released back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The owner had no live socket (or was away) for the tenant's limit.
    OwnerAbsent,
    /// The end user's message had no reply from the owner for the tenant's limit.
    NoReply,
    /// An admin released it.
    Admin,
}

impl ReleaseReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::OwnerAbsent => "owner_absent",
            ReleaseReason::NoReply => "no_reply",
            ReleaseReason::Admin => "admin",
        }
    }
}

pub use amend::{Amended, Change, ChangeKind, fold, scrub_edit};

/// What happened, without its position (`seq`) and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    /// A chat message.
    Message {
        /// Who wrote it.
        author: Author,
        /// The sender's idempotency key, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// What it says.
        content: MessageContent,
    },
    /// The status, owner, epoch or disabled flag changed; carries the full new snapshot.
    Status {
        /// New status.
        status: Status,
        /// New owner.
        owner: Option<AgentId>,
        /// New epoch.
        epoch: u64,
        /// New disabled flag.
        disabled: bool,
        /// Why.
        cause: Cause,
        /// The owner before a take-over or finish.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_owner: Option<AgentId>,
        /// Why it was released (cause `released`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReleaseReason>,
        /// Who caused it.
        by: Author,
    },
    /// A private note of an agent or admin: shown to agents only, never to an end user
    /// (on any path). Changes no ownership.
    Note {
        /// Who wrote it.
        author: Author,
        /// The sender's idempotency key, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// What it says.
        text: String,
        /// The agents it mentions (`@alice`), each told with a `mention` notice.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<AgentId>,
    },
    /// The author changed the text of their message `target` (within the tenant's edit
    /// window). `text` is absent once the message was unsent or redacted after it.
    Edited {
        /// The message's `seq`.
        target: u64,
        /// Who edited it (its author).
        author: Author,
        /// The new text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The author took their message `target` back (within the tenant's edit window).
    Unsent {
        /// The message's `seq`.
        target: u64,
        /// Who unsent it (its author).
        author: Author,
    },
    /// An admin (`data.erase`) removed the message `target` for good, with a reason.
    Redacted {
        /// The message's `seq`.
        target: u64,
        /// Who redacted it.
        by: Author,
        /// Why (shown to both sides).
        reason: String,
    },
    /// The satisfaction survey the end user is asked after a finish (the tenant's
    /// question; the answer is 1–5 and an optional comment).
    Survey {
        /// The question, as the tenant words it.
        prompt: String,
    },
    /// The end user's answer to the survey `survey`, with the reward it granted.
    SurveyAnswered {
        /// The survey's `seq`.
        survey: u64,
        /// Who answered (the end user).
        author: Author,
        /// 1 (worst) to 5 (best).
        rating: u8,
        /// What they added.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// The engagement the answer granted (the tenant's reward, when the end user was
        /// entitled to it): recorded as received in their engagement history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reward: Option<EngagementCard>,
    },
    /// The automatic reply outside the tenant's business hours: when the team is back.
    /// Changes nothing else (the conversation still waits).
    AutoReply {
        /// What the end user reads (the tenant's template, filled on the server).
        text: String,
        /// When the team is back, ms since the Unix epoch (`None`: not within a year).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        back_at: Option<u64>,
    },
    /// The bot's summary when it handed the conversation to the humans: shown to agents
    /// only (pinned for whoever takes it), never to an end user.
    Handoff {
        /// Who handed off (the bot).
        author: Author,
        /// What the bot says the customer needs.
        summary: String,
        /// What it collected, in its order (e.g. `order` → `A-1042`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fields: Vec<HandoffField>,
    },
    /// The scanner's verdict on an attachment of the conversation: `clean` or `blocked`.
    /// Changes no ownership; it has a `seq` so that every device, resumes included,
    /// converges on the same state of the file.
    AttachmentChecked {
        /// The attachment.
        attachment: AttachmentId,
        /// `clean` or `blocked`.
        status: AttachmentStatus,
    },
}

impl EventBody {
    /// Whether only agents and admins may see it (a private note): never sent, replayed
    /// or shown to an end user.
    pub fn is_agents_only(&self) -> bool {
        matches!(self, EventBody::Note { .. } | EventBody::Handoff { .. })
    }
}

/// One field a bot collected before handing off.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffField {
    /// Its name, e.g. `order`.
    pub name: String,
    /// Its value, e.g. `A-1042`.
    pub value: String,
}

/// One event of a conversation: its body, its position and its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the conversation, from 1, without gaps.
    pub seq: u64,
    /// When it was applied, in milliseconds since the Unix epoch.
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
    /// A message's latest edit or its removal, as history shows it (the message folded
    /// with its later `edited`, `unsent` or `redacted` event); absent while unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amended: Option<Amended>,
}

/// A command on one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message. For agents this may take the conversation (see module docs);
    /// `seen_epoch` is the epoch the agent saw (ignored for end users).
    Send {
        /// What to send.
        content: MessageContent,
        /// The sender's idempotency key.
        client_msg_id: Option<String>,
        /// The epoch the agent saw; `None` only for end users.
        seen_epoch: Option<u64>,
    },
    /// Write a private note (agents and admins): see the module docs.
    Note {
        /// What it says.
        text: String,
        /// The sender's idempotency key.
        client_msg_id: Option<String>,
        /// The agents it mentions (checked by the caller: known agents, no repeats).
        mentions: Vec<AgentId>,
    },
    /// Finish the conversation.
    Finish {
        /// The epoch the finisher saw.
        seen_epoch: u64,
    },
    /// Disable (`true`) or enable (`false`) two-way chat.
    SetDisabled(bool),
    /// Hand the conversation to agent `to`: its owner may (an active conversation), and
    /// an admin may (also assigning an unanswered one). One step: `to` owns it, the
    /// epoch moves, cause `transferred`.
    Transfer {
        /// The new owner.
        to: AgentId,
        /// The epoch the actor saw.
        seen_epoch: u64,
    },
    /// Give the active conversation back to the queue (admins; the server's stall policy
    /// acts as one): see the module docs.
    Release {
        /// The epoch the releaser saw.
        seen_epoch: u64,
        /// The `seq` the releaser saw: released only while nothing happened since.
        last_seq: u64,
        /// Why.
        reason: ReleaseReason,
    },
    /// Tell the waiting end user when the team is back (admins; the server's business
    /// hours act as one): an `auto_reply` event, only while the conversation is
    /// unanswered and still at `last_seq` (nothing happened since the server looked),
    /// otherwise `invalid_state`.
    AutoReply {
        /// The `seq` the server saw.
        last_seq: u64,
        /// The reply.
        text: String,
        /// When the team is back (ms).
        back_at: Option<u64>,
    },
    /// The owning bot gives the conversation to the humans (see the module docs).
    Handoff {
        /// The epoch the bot saw.
        seen_epoch: u64,
        /// What the customer needs, in the bot's words.
        summary: String,
        /// What it collected.
        fields: Vec<HandoffField>,
    },
    /// Record the scanner's verdict on an attachment (the server issues it for the
    /// scanner; no client request maps to it). Always applies, whoever the actor and
    /// whatever the status: it only takes the next `seq` (none on a `new`
    /// conversation, which has no message yet to be about).
    RecordVerdict {
        /// The attachment.
        attachment: AttachmentId,
        /// `clean` or `blocked`.
        status: AttachmentStatus,
    },
    /// Edit, unsend or redact the message `target` (see [`amend`] for the rules; the
    /// target's current form comes in the [`Context`]).
    Amend {
        /// The message's `seq`.
        target: u64,
        /// What to do to it.
        change: Change,
    },
    /// The end user's answer to the open survey (see the module docs).
    AnswerSurvey {
        /// 1 to 5 (checked by the caller).
        rating: u8,
        /// An optional comment.
        comment: Option<String>,
        /// The reward it grants (the caller checked the end user is entitled to it).
        reward: Option<EngagementCard>,
    },
    /// Erase the conversation (the erasure of its end user, `data.erase`): see the module
    /// docs. It records no event: its history goes, and the stores that keep events
    /// remove theirs up to the `seq` it leaves.
    Erase,
    /// Erase the conversation for the tenant's retention policy (`data.erase`): as
    /// [`Command::Erase`], but only while its last event is still `last_seq` (see the
    /// module docs).
    Expire {
        /// The `seq` the conversation was idle at, past the policy's cut-off.
        last_seq: u64,
    },
}

/// A successful application: the new state and the events to record and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state after the command.
    pub state: ConversationState,
    /// The events, with consecutive `seq`s after the old state's `seq`. Empty when the
    /// command changed nothing (e.g. disabling a disabled conversation), and for an
    /// erasure (whose state is all it changes).
    pub events: Vec<Event>,
}

/// A command refused for a reason other than a lost race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The actor lacks the role or privilege the command needs.
    Forbidden,
    /// Two-way chat is disabled for this conversation.
    ChatDisabled,
    /// The command does not apply in the current status (e.g. finishing a finished one).
    InvalidState,
    /// An agent's command did not carry the epoch it saw.
    MissingEpoch,
}

/// The result of applying a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; record and publish the events.
    Applied(Transition),
    /// The epoch moved since the agent saw it: someone else won. Nothing changed.
    Conflict {
        /// The current owner (`None` if nobody owns it now).
        owner: Option<AgentId>,
        /// The current epoch.
        epoch: u64,
    },
    /// Refused; nothing changed.
    Refused(Refusal),
}

/// Applies `command` by `actor` to `state` at time `at` (ms since the Unix epoch), with
/// nothing disabled tenant-wide. See [`apply_in`].
pub fn apply(state: &ConversationState, actor: &Actor, command: &Command, at: u64) -> Outcome {
    apply_in(&Context::default(), state, actor, command, at)
}

/// Applies `command` by `actor` to `state` at time `at` (ms since the Unix epoch) in
/// `context`.
///
/// The caller has already checked scope (an end user acts only on their own
/// conversation); everything else is decided here.
pub fn apply_in(
    context: &Context,
    state: &ConversationState,
    actor: &Actor,
    command: &Command,
    at: u64,
) -> Outcome {
    let disabled = state.disabled || context.tenant_chat_disabled;
    let mut next = Builder::new(state, actor, at);
    match (actor, command) {
        (_, Command::RecordVerdict { attachment, status }) => {
            // A conversation with no event yet has no message the verdict could be
            // about (its file is not sent yet; the send carries the verdict): nothing.
            if state.status != Status::New {
                next.push(EventBody::AttachmentChecked {
                    attachment: attachment.clone(),
                    status: *status,
                });
            }
        }
        (
            Actor::EndUser(_),
            Command::Send {
                content,
                client_msg_id,
                ..
            },
        ) => {
            if matches!(content, MessageContent::Engagement { .. }) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if disabled {
                return Outcome::Refused(Refusal::ChatDisabled);
            }
            // With the tenant's bot, it answers first: it owns the new cycle.
            let (status, owner) = match &context.bot {
                Some(bot) => (Status::Active, Some(bot.clone())),
                None => (Status::Unanswered, None),
            };
            match state.status {
                Status::New => next.status(status, owner, Cause::Opened),
                Status::Finished => next.status(status, owner, Cause::Reopened),
                Status::Unanswered | Status::Active => {}
            }
            next.message(content, client_msg_id);
        }
        (
            Actor::Agent { id, bot: true, .. },
            Command::Send {
                content,
                client_msg_id,
                seen_epoch,
            },
        ) => {
            let seen_epoch = match staff_send_epoch(actor, content, *seen_epoch) {
                Ok(epoch) => epoch,
                Err(refusal) => return Outcome::Refused(refusal),
            };
            // The fence first: a human's take moved the epoch, so the bot's reply in
            // flight loses the race like any owner's would.
            if seen_epoch != state.epoch {
                return conflict(state);
            }
            // A bot never takes: it writes only where it owns the conversation.
            if !(state.status == Status::Active && state.owner.as_ref() == Some(id)) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            next.message(content, client_msg_id);
        }
        (
            Actor::Agent { id, bot: true, .. },
            Command::Handoff {
                seen_epoch,
                summary,
                fields,
            },
        ) => {
            if *seen_epoch != state.epoch {
                return conflict(state);
            }
            if !(state.status == Status::Active && state.owner.as_ref() == Some(id)) {
                return Outcome::Refused(Refusal::InvalidState);
            }
            next.status(Status::Unanswered, None, Cause::HandedOff);
            next.push(EventBody::Handoff {
                author: Author::of(actor),
                summary: summary.clone(),
                fields: fields.clone(),
            });
        }
        // Only a bot hands off; a bot does not run the team's controls.
        (Actor::EndUser(_) | Actor::Agent { bot: false, .. }, Command::Handoff { .. })
        | (
            Actor::Agent { bot: true, .. },
            Command::Transfer { .. }
            | Command::Release { .. }
            | Command::AutoReply { .. }
            | Command::SetDisabled(_)
            | Command::Erase
            | Command::Expire { .. },
        ) => {
            return Outcome::Refused(Refusal::Forbidden);
        }
        (
            Actor::Agent { id, .. },
            Command::Send {
                content,
                client_msg_id,
                seen_epoch,
            },
        ) => {
            let seen_epoch = match staff_send_epoch(actor, content, *seen_epoch) {
                Ok(epoch) => epoch,
                Err(refusal) => return Outcome::Refused(refusal),
            };
            let owns = state.status == Status::Active && state.owner.as_ref() == Some(id);
            if !owns {
                if !actor.has(Privilege::ChatTake) {
                    return Outcome::Refused(Refusal::Forbidden);
                }
                if disabled {
                    return Outcome::Refused(Refusal::ChatDisabled);
                }
            }
            if seen_epoch != state.epoch {
                return conflict(state);
            }
            if !owns {
                let cause = if state.status == Status::Active {
                    Cause::TakenOver
                } else {
                    Cause::Taken
                };
                next.status(Status::Active, Some(id.clone()), cause);
            }
            next.message(content, client_msg_id);
        }
        (
            Actor::EndUser(_),
            Command::AnswerSurvey {
                rating,
                comment,
                reward,
            },
        ) => {
            let Some(survey) = state.survey else {
                return Outcome::Refused(Refusal::InvalidState);
            };
            next.state.survey = None;
            next.push(EventBody::SurveyAnswered {
                survey,
                author: Author::of(actor),
                rating: *rating,
                comment: comment.clone(),
                reward: reward.clone(),
            });
        }
        // Only the end user answers their survey.
        (Actor::Agent { .. }, Command::AnswerSurvey { .. }) => {
            return Outcome::Refused(Refusal::Forbidden);
        }
        (
            Actor::EndUser(_),
            Command::Finish { .. }
            | Command::SetDisabled(_)
            | Command::Transfer { .. }
            | Command::Note { .. }
            | Command::Release { .. }
            | Command::AutoReply { .. }
            | Command::Amend {
                change: Change::Redact { .. },
                ..
            }
            | Command::Erase
            | Command::Expire { .. },
        ) => {
            return Outcome::Refused(Refusal::Forbidden);
        }
        (Actor::Agent { id, admin, .. }, Command::Transfer { to, seen_epoch }) => {
            if !matches!(state.status, Status::Active | Status::Unanswered) {
                return Outcome::Refused(Refusal::InvalidState);
            }
            let owns = state.status == Status::Active && state.owner.as_ref() == Some(id);
            if !(owns || *admin) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if *seen_epoch != state.epoch {
                return conflict(state);
            }
            // To the owner it already has: nothing to hand over.
            if state.owner.as_ref() == Some(to) {
                return Outcome::Refused(Refusal::InvalidState);
            }
            next.status(Status::Active, Some(to.clone()), Cause::Transferred);
        }
        (
            Actor::Agent { admin, .. },
            Command::Release {
                seen_epoch,
                last_seq,
                reason,
            },
        ) => {
            if !*admin {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if state.status != Status::Active {
                return Outcome::Refused(Refusal::InvalidState);
            }
            if *seen_epoch != state.epoch {
                return conflict(state);
            }
            // Something happened since the releaser looked (the owner replied): kept.
            if state.seq != *last_seq {
                return Outcome::Refused(Refusal::InvalidState);
            }
            next.release(*reason);
        }
        (
            Actor::Agent { admin, .. },
            Command::AutoReply {
                last_seq,
                text,
                back_at,
            },
        ) => {
            if !*admin {
                return Outcome::Refused(Refusal::Forbidden);
            }
            // Only to someone still waiting, and only on what the server saw.
            if state.status != Status::Unanswered || state.seq != *last_seq {
                return Outcome::Refused(Refusal::InvalidState);
            }
            next.push(EventBody::AutoReply {
                text: text.clone(),
                back_at: *back_at,
            });
        }
        (Actor::Agent { id, admin, .. }, Command::Finish { seen_epoch }) => {
            let owns = state.owner.as_ref() == Some(id);
            if matches!(state.status, Status::New | Status::Finished) {
                return Outcome::Refused(Refusal::InvalidState);
            }
            if !actor.has(Privilege::ChatFinish) || !(owns || *admin) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if *seen_epoch != state.epoch {
                return conflict(state);
            }
            next.status(Status::Finished, None, Cause::Finished);
            if let Some(prompt) = &context.survey {
                next.push(EventBody::Survey {
                    prompt: prompt.clone(),
                });
                next.state.survey = Some(next.state.seq);
            }
        }
        (
            Actor::Agent { .. },
            Command::Note {
                text,
                client_msg_id,
                mentions,
            },
        ) => {
            if state.status == Status::New {
                return Outcome::Refused(Refusal::InvalidState);
            }
            next.push(EventBody::Note {
                author: Author::of(actor),
                client_msg_id: client_msg_id.clone(),
                text: text.clone(),
                mentions: mentions.clone(),
            });
        }
        (_, Command::Amend { target, change }) => {
            if let Err(refusal) = amend::check(context, state, actor, *target, change, at) {
                return Outcome::Refused(refusal);
            }
            next.push(amend::body(actor, *target, change));
        }
        (Actor::Agent { .. }, Command::Erase) => {
            if !actor.has(Privilege::DataErase) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if state.status != Status::New {
                next.erase();
            }
        }
        (Actor::Agent { .. }, Command::Expire { last_seq }) => {
            if !actor.has(Privilege::DataErase) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if state.status != Status::New {
                // Something happened since the sweep saw it idle: alive, kept.
                if state.seq != *last_seq {
                    return Outcome::Refused(Refusal::InvalidState);
                }
                next.erase();
            }
        }
        (Actor::Agent { .. }, Command::SetDisabled(disabled)) => {
            if !actor.has(Privilege::ChatDisable) {
                return Outcome::Refused(Refusal::Forbidden);
            }
            if state.disabled != *disabled {
                next.disabled(*disabled);
            }
        }
    }
    Outcome::Applied(next.finish())
}

/// The checks every send by an agent or a bot starts with: the epoch it saw is given,
/// and an engagement needs `engagement.send`.
fn staff_send_epoch(
    actor: &Actor,
    content: &MessageContent,
    seen_epoch: Option<u64>,
) -> Result<u64, Refusal> {
    let seen_epoch = seen_epoch.ok_or(Refusal::MissingEpoch)?;
    if matches!(content, MessageContent::Engagement { .. }) && !actor.has(Privilege::EngagementSend)
    {
        return Err(Refusal::Forbidden);
    }
    Ok(seen_epoch)
}

fn conflict(state: &ConversationState) -> Outcome {
    Outcome::Conflict {
        owner: state.owner.clone(),
        epoch: state.epoch,
    }
}

/// Accumulates the new state and its events, numbering them as they come.
struct Builder<'a> {
    state: ConversationState,
    events: Vec<Event>,
    actor: &'a Actor,
    at: u64,
}

impl<'a> Builder<'a> {
    fn new(state: &ConversationState, actor: &'a Actor, at: u64) -> Self {
        Builder {
            state: state.clone(),
            events: Vec::with_capacity(2),
            actor,
            at,
        }
    }

    fn push(&mut self, body: EventBody) {
        self.state.seq += 1;
        self.events.push(Event {
            seq: self.state.seq,
            at: self.at,
            body,
            amended: None,
        });
    }

    fn status(&mut self, status: Status, owner: Option<AgentId>, cause: Cause) {
        self.change_status(status, owner, cause, None);
    }

    fn release(&mut self, reason: ReleaseReason) {
        self.change_status(Status::Unanswered, None, Cause::Released, Some(reason));
    }

    fn change_status(
        &mut self,
        status: Status,
        owner: Option<AgentId>,
        cause: Cause,
        reason: Option<ReleaseReason>,
    ) {
        let previous_owner = self.state.owner.clone();
        if previous_owner != owner {
            self.state.epoch += 1;
        }
        self.state.status = status;
        self.state.owner = owner;
        // The cycle the survey was about is over (a finish opens its own after this).
        self.state.survey = None;
        self.push_status(cause, previous_owner, reason);
    }

    fn disabled(&mut self, disabled: bool) {
        self.state.disabled = disabled;
        let cause = if disabled {
            Cause::Disabled
        } else {
            Cause::Enabled
        };
        self.push_status(cause, None, None);
    }

    /// Forgets everything but the counters (see the module docs).
    fn erase(&mut self) {
        self.state = ConversationState {
            status: Status::New,
            owner: None,
            epoch: self.state.epoch + 1,
            seq: self.state.seq,
            disabled: false,
            survey: None,
        };
    }

    fn push_status(
        &mut self,
        cause: Cause,
        previous_owner: Option<AgentId>,
        reason: Option<ReleaseReason>,
    ) {
        let body = EventBody::Status {
            status: self.state.status,
            owner: self.state.owner.clone(),
            epoch: self.state.epoch,
            disabled: self.state.disabled,
            cause,
            previous_owner,
            reason,
            by: Author::of(self.actor),
        };
        self.push(body);
    }

    fn message(&mut self, content: &MessageContent, client_msg_id: &Option<String>) {
        let body = EventBody::Message {
            author: Author::of(self.actor),
            client_msg_id: client_msg_id.clone(),
            content: content.clone(),
        };
        self.push(body);
    }

    fn finish(self) -> Transition {
        Transition {
            state: self.state,
            events: self.events,
        }
    }
}

pub mod amend;
#[cfg(test)]
mod tests;
