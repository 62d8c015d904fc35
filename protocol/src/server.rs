//! Frames the server sends. One tag, `type`: `welcome`, `ok`, `err`, `event`, `queue`,
//! `typing`, `read`.

use crate::error::ErrorCode;
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{CatalogueItem, EngagementType, HistoryEvent, Profile};
use chathub_domain::{
    AgentId, Author, ConversationId, ConversationState, Event, Presence, Privileges, Role, Status,
    TenantId,
};
use serde::{Deserialize, Serialize};

/// Any frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection: who you are and the limits that apply.
    Welcome(Welcome),
    /// Success reply to request `id`.
    Ok {
        /// The request's id.
        id: u64,
        /// The operation's result, tagged with the operation (`op`).
        result: Reply,
    },
    /// Failure reply to request `id` (or to an unreadable frame: `id` absent).
    Err(ErrorFrame),
    /// A conversation event (message or status change), with its `seq`.
    Event(EventFrame),
    /// Agents: a conversation of the tenant changed status, owner or flags.
    Queue(QueueItem),
    /// Someone started or stopped typing. Not recorded, no `seq`.
    Typing(TypingFrame),
    /// Someone has seen the conversation up to `seq`.
    Read(ReadFrame),
    /// To every device of an agent: another agent took over its conversation.
    OwnershipLost(OwnershipLostFrame),
    /// To every device of an agent: a conversation was transferred to them.
    Assigned(AssignedFrame),
    /// To every device of an agent: another agent mentioned them in a private note.
    Mention(MentionFrame),
    /// To every device of an agent: a conversation has been waiting unanswered past a
    /// step of the tenant's alert schedule.
    Alert(AlertFrame),
    /// To a waiting end user (on their conversation's channel): where they are in the
    /// queue and how long it may take.
    QueuePosition(QueuePositionFrame),
    /// To everyone in the tenant: the team opened or closed (its business hours).
    Hours(HoursFrame),
    /// To everyone in the tenant: the tenant-wide chat switch changed.
    Tenant(TenantFrame),
    /// To agents: an agent's availability changed.
    Presence(PresenceFrame),
    /// To everyone following the conversation and to the tenant's agents: it was
    /// erased (its end user's data erasure). Consoles drop it; the end user's own
    /// devices are closed right after (close code 4102).
    Erased(ErasedFrame),
}

/// An `erased` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Every event up to this `seq` is gone; the conversation's next event has the next
    /// one.
    pub seq: u64,
    /// Why: the end user's erasure, or the tenant's retention policy.
    #[serde(default)]
    pub reason: ErasureReason,
}

/// Why a conversation was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// Its end user's erasure (`DELETE /admin/v1/users/{user}`).
    #[default]
    Erasure,
    /// It stayed idle past the tenant's retention policy.
    Retention,
}

/// An `ownership_lost` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipLostFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who has it now (absent after a release: nobody, it is back in the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<AgentId>,
    /// The epoch of the take-over (or release).
    pub epoch: u64,
    /// `seq` of the take-over (or release) event.
    pub seq: u64,
    /// Why it was released (after a release only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<chathub_domain::ReleaseReason>,
}

/// A `mention` notice: an agent's private note mentions you.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// `seq` of the note.
    pub seq: u64,
    /// Who wrote it.
    pub by: Author,
    /// What it says.
    pub text: String,
}

/// How pressing an `alert` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// A step for the agents (available, or all).
    Reminder,
    /// A step for the supervisors.
    Escalation,
    /// The step the tenant marked as its service-level breach.
    Breach,
}

impl AlertLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Reminder => "reminder",
            AlertLevel::Escalation => "escalation",
            AlertLevel::Breach => "breach",
        }
    }
}

/// An `alert`: somebody has been waiting unanswered since `since`. Fenced: a device that
/// has seen the conversation leave the queue at a later `seq` (a take, the queue frame
/// saying so) drops an alert with an older `seq`; the server sends none after a take's
/// acknowledgement to the taker, or after the queue frame of the take to anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its epoch while it waits (the epoch to send a take with).
    pub epoch: u64,
    /// Its `seq` when the alert was decided.
    pub seq: u64,
    /// When it entered the unanswered queue, ms since the Unix epoch.
    pub since: u64,
    /// Which step of the schedule (0 the first).
    pub step: u32,
    /// Which occurrence of the step (0 the first; a repeating step counts up).
    pub occurrence: u32,
    /// Reminder, escalation or breach.
    pub level: AlertLevel,
    /// The latest message's preview, as the queue shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// A `queue_position`: the end user's place among the tenant's waiting conversations
/// (1: next), and an estimate of the wait left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePositionFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its place in the queue, the longest waiting first (1: next).
    pub position: u32,
    /// How many conversations wait.
    pub waiting: u32,
    /// The estimated wait left, seconds (from the tenant's recent waits before a take;
    /// absent with none measured yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<u64>,
}

/// An `assigned` notice: the conversation is yours now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who handed it over.
    pub by: Author,
    /// The epoch of the transfer (send it with your messages).
    pub epoch: u64,
    /// `seq` of the transfer event.
    pub seq: u64,
    /// Their note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The tenant's settings as pushed in `tenant` frames and answered to the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantFrame {
    /// Two-way chat disabled for the whole tenant.
    pub chat_disabled: bool,
}

/// An agent's aggregated availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceFrame {
    /// The agent.
    pub agent: String,
    /// Available, away or offline (over all the agent's devices).
    pub presence: Presence,
    /// Last sign of life, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Display name (the `name` claim of the agent's token), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `welcome` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// This connection's id (for logs and support).
    pub session: String,
    /// Your tenant.
    pub tenant: TenantId,
    /// Your role.
    pub role: Role,
    /// Your id (end user id or agent id).
    pub subject: String,
    /// Your privileges.
    pub privileges: Privileges,
    /// The limits that apply to this connection.
    pub limits: Limits,
    /// Two-way chat is disabled for the whole tenant right now.
    #[serde(default)]
    pub chat_disabled: bool,
    /// Identifies the history the server holds; send it back with `subscribe` `since`
    /// (it changes only when the server's data was lost).
    #[serde(default)]
    pub history_id: String,
    /// With the tenant's business hours: whether the team is open now, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<HoursFrame>,
    /// To agents, with the tenant's bot: its id (the conversations it owns are "with
    /// bot": it answers first and hands off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<chathub_domain::AgentId>,
}

/// Whether the team is open (the tenant's business hours), and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursFrame {
    /// Open now.
    pub open: bool,
    /// When that changes (ms since the Unix epoch): the closing time when open, the
    /// opening time when closed; absent when not within a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

/// Limits announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest WebSocket message accepted, in bytes; larger ones close with 1009.
    pub max_message_bytes: u32,
    /// Longest message text, in bytes; longer gets `too_large`.
    pub max_text_bytes: u32,
    /// Largest `limit` for `history` and `list`.
    pub max_page: u32,
    /// The server pings this often (ms); answer within `ping_timeout_ms` or be closed (4000).
    pub ping_interval_ms: u64,
    /// See `ping_interval_ms`.
    pub ping_timeout_ms: u64,
    /// Requests per second on average; more get `rate_limited`.
    #[serde(default)]
    pub rate_per_sec: u32,
    /// Requests allowed in a burst.
    #[serde(default)]
    pub rate_burst: u32,
}

/// An `err` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The request's id; absent when the frame was unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// What went wrong, from the closed list.
    pub code: ErrorCode,
    /// A human-readable explanation (not for matching).
    pub message: String,
    /// With `conflict`: who owns the conversation now (absent: nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<AgentId>,
    /// With `conflict`: the current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// With `not_entitled`: why (`not_yet_valid`, `insufficient_points`, `not_in_segment`,
    /// …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ErrorFrame {
    /// An error with just a code and a message.
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            id,
            code,
            message: message.into(),
            owner: None,
            epoch: None,
            reason: None,
        }
    }
}

/// A conversation event as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// The event (`seq`, `at`, `event` and its fields).
    #[serde(flatten)]
    pub event: Event,
}

/// One conversation's entry in the tenant's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The conversation (also the end user's id).
    pub conversation: ConversationId,
    /// Status now.
    pub status: Status,
    /// Owner now.
    pub owner: Option<AgentId>,
    /// Ownership epoch now.
    pub epoch: u64,
    /// `seq` of the change this entry reflects; a later `seq` wins.
    pub seq: u64,
    /// Two-way chat disabled.
    pub disabled: bool,
    /// When the conversation entered this status (ms since the Unix epoch).
    pub since: u64,
    /// When it last changed (ms since the Unix epoch).
    pub updated: u64,
    /// The last message's text, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// In `list` replies for unanswered conversations: how long the end user has been
    /// waiting, in ms (server clock). Absent in pushed `queue` frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_ms: Option<u64>,
    /// In `list` replies for active conversations: the owner has had no live session for
    /// longer than the configured time (someone else may want to take over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_absent: Option<bool>,
    /// In pushed `queue` frames: this change's position in the tenant's inbox stream
    /// (opaque; pass the last one you saw to `inbox` to catch up after a reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A `typing` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who is typing.
    pub from: Author,
    /// Started (`true`) or stopped.
    pub typing: bool,
}

/// A read receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who read.
    pub by: Author,
    /// Seen up to this `seq`.
    pub seq: u64,
}

/// The result of a successful request, tagged by its operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The message was recorded with `seq`.
    Send(SendAck),
    /// Subscribed; replayed events (if any) were sent before this reply.
    Subscribe(Subscribed),
    /// Unsubscribed.
    Unsubscribe {},
    /// The conversation now.
    Open(Opened),
    /// A page of history.
    History(HistoryPage),
    /// A page of the queue.
    List(ListPage),
    /// Finished; the state after.
    Finish(ConversationView),
    /// Transferred; the state after.
    Transfer(ConversationView),
    /// Released: the state after it.
    Release(ConversationView),
    /// Handed off: the state after it.
    Handoff(ConversationView),
    /// Edited: the `edited` event's `seq`.
    Edit(AmendAck),
    /// Unsent: the `unsent` event's `seq`.
    Unsend(AmendAck),
    /// Redacted: the `redacted` event's `seq`.
    Redact(AmendAck),
    /// The survey answered: the `survey_answered` event's `seq` and the reward granted.
    SurveyAnswer(SurveyAck),
    /// Typing notice sent.
    Typing {},
    /// Read mark recorded.
    Read {},
    /// Disabled; the state after.
    Disable(ConversationView),
    /// Enabled; the state after.
    Enable(ConversationView),
    /// Queue changes after `since` were replayed before this reply.
    Inbox(InboxReply),
    /// A page of engagement history.
    EngagementHistory(EngagementHistoryReply),
    /// The latest events per engagement type.
    EngagementActivity(ActivityReply),
    /// Engagements the end user is entitled to now.
    EngagementsAvailable(AvailableReply),
    /// The end user's profile.
    Profile(ProfileReply),
    /// Redeemed.
    Redeem(RedeemReply),
    /// Canned responses.
    CannedList(CannedListReply),
    /// The canned response as stored.
    CannedUpsert(CannedResponse),
    /// Deleted.
    CannedDelete {},
    /// Tenant-wide chat disabled.
    DisableTenant(TenantFrame),
    /// Tenant-wide chat enabled.
    EnableTenant(TenantFrame),
    /// Availability set; the agent's aggregate over all devices.
    Presence(PresenceFrame),
    /// The tenant's agents.
    Agents(AgentsReply),
    /// Messages found, newest first.
    Search(SearchReply),
    /// A conversation's transcript.
    Transcript(TranscriptReply),
    /// The tenant's figures.
    Stats(StatsReply),
    /// Where to upload the file (or that it is stored already).
    AttachmentUpload(UploadReply),
    /// Download links.
    AttachmentLink(LinkReply),
    /// Pong.
    Ping {},
}

/// Reply to `attachment_upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReply {
    /// The attachment's id (name it in `send`).
    pub attachment: chathub_domain::AttachmentId,
    /// Where to `PUT` the bytes (absent once stored). Valid until `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// When `upload_url` stops working, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Bytes this node has staged already (resume from here; 0 for a new upload).
    pub received: u64,
    /// The declared size.
    pub size: u64,
    /// The stored file, when every byte arrived and passed the checks: send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<chathub_domain::AttachmentCard>,
    /// Direct uploads (the server's store is S3): `PUT` each part's bytes to its URL,
    /// keep the `ETag` S3 answers, then `POST` them to `complete_url`. Instead of
    /// `upload_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<UploadPart>,
    /// Direct uploads: where to `POST {"parts": [{"number", "etag"}…]}` once every part
    /// is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_url: Option<String>,
}

/// One part of a direct upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPart {
    /// Its number, from 1.
    pub number: u32,
    /// Where to `PUT` its bytes (presigned; valid until the reply's `expires_at`).
    pub url: String,
    /// The first byte of the file it holds.
    pub offset: u64,
    /// How many bytes it holds.
    pub size: u64,
}

/// Reply to `attachment_link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkReply {
    /// The file as the thread shows it.
    pub attachment: chathub_domain::AttachmentCard,
    /// The file (supports `Range`); valid until `expires_at`.
    pub url: String,
    /// Its thumbnail (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// When the links stop working, ms since the Unix epoch.
    pub expires_at: u64,
}

/// Reply to `transcript`: a conversation's record, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranscriptReply {
    /// The conversation.
    pub conversation: ConversationId,
    /// When it was made, ms since the Unix epoch.
    pub generated_at: u64,
    /// The conversation's state now.
    pub state: ConversationState,
    /// Whether it starts at the conversation's first event (`false` where older ones
    /// are no longer kept: the tenant's retention policy, an erasure, or the hot window
    /// of a node without a record tier).
    pub complete: bool,
    /// The tenant's retention policy, when it has one (nothing before its cut-off is in
    /// the transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// Every message.
    pub messages: Vec<TranscriptMessage>,
    /// Every change of status and owner: opened, taken, taken over, finished, reopened,
    /// disabled, enabled.
    pub timeline: Vec<TimelineEntry>,
    /// Engagements sent in the conversation, granted by a survey answer and redeemed by
    /// the end user.
    pub engagements: Vec<TranscriptEngagement>,
    /// The satisfaction surveys asked after finishes, with their answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surveys: Vec<TranscriptSurvey>,
    /// The transcript as `text` or `html`, when `format` asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
}

/// A message of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranscriptMessage {
    /// Its `seq`.
    pub seq: u64,
    /// When, ms.
    pub at: u64,
    /// Who wrote it.
    pub author: Author,
    /// `text`, `engagement` or `attachment`.
    pub kind: String,
    /// The text (an engagement's title, an attachment's file name).
    pub text: String,
    /// The file, for an `attachment` (links are asked for with `attachment_link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<chathub_domain::AttachmentCard>,
    /// Its latest edit, or its removal (then `kind` is `removed` and `text` empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amended: Option<chathub_domain::Amended>,
}

/// A change of status or owner in a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// Its `seq`.
    pub seq: u64,
    /// When, ms.
    pub at: u64,
    /// What happened.
    pub cause: chathub_domain::Cause,
    /// The status after it.
    pub status: Status,
    /// The owner after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<AgentId>,
    /// The owner before a take-over or a finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<AgentId>,
    /// Who caused it.
    pub by: Author,
}

/// A satisfaction survey in a transcript, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranscriptSurvey {
    /// The `survey` event's `seq`.
    pub seq: u64,
    /// When it was asked, ms.
    pub at: u64,
    /// The question.
    pub prompt: String,
    /// When it was answered, ms (absent: not answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<u64>,
    /// 1–5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    /// The end user's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An engagement in a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranscriptEngagement {
    /// When, ms.
    pub at: u64,
    /// `sent` (by an agent, in the conversation), `granted` (the reward of a survey
    /// answer) or `redeemed` (by the end user).
    pub action: String,
    /// The catalogue item.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub engagement_type: EngagementType,
    /// Its title.
    pub name: String,
    /// The message's `seq`, for engagements sent in the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Reply to `stats`: figures over the conversation cycles opened in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Start, ms (inclusive).
    pub from: u64,
    /// End, ms (exclusive).
    pub to: u64,
    /// Cycles opened (a conversation opened, or reopened by the end user).
    pub opened: u64,
    /// Of them, answered by an agent.
    pub answered: u64,
    /// Of them, finished.
    pub finished: u64,
    /// Messages of end users in them.
    pub end_user_messages: u64,
    /// Messages of agents in them.
    pub agent_messages: u64,
    /// Mean time from opening to the first take (or to a finish unanswered), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_waiting_ms: Option<u64>,
    /// Mean time from the first take to the finish, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_handling_ms: Option<u64>,
    /// Survey answers by rating: the count of 1s, 2s, 3s, 4s and 5s.
    #[serde(default)]
    pub ratings: [u64; 5],
}

/// Reply to `search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchReply {
    /// Messages found, newest first.
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The tenant's text search configuration (admin API `/admin/v1/search/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchConfig {
    /// The configuration messages are indexed and searched with: `chathub_simple` (the
    /// default: no stemming, any language, accents folded) or a PostgreSQL one
    /// (`english`, `french`, …) in cluster mode with an archive; `simple` on the
    /// embedded default.
    pub config: String,
    /// Whether it can be changed here (only with the PostgreSQL archive).
    pub configurable: bool,
}

/// One message found by `search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its `seq` (page the conversation's `history` around it).
    pub seq: u64,
    /// When it was written, ms since the Unix epoch.
    pub at: u64,
    /// Who wrote it.
    pub author: Author,
    /// `text` or `engagement`.
    pub kind: String,
    /// The message around the match, in pieces; `hit: true` marks the matched words
    /// (render them highlighted; the text is plain, never markup).
    pub snippet: Vec<SnippetPart>,
}

/// A piece of a search hit's snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnippetPart {
    /// The text.
    pub text: String,
    /// Whether it matched the query.
    pub hit: bool,
}

/// Reply to `inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxReply {
    /// The newest inbox position now (after the replayed frames); absent while the
    /// tenant's inbox is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// How many `queue` frames were replayed before this reply.
    pub replayed: u64,
    /// `true` when `since` is older than the retained inbox stream: some changes cannot
    /// be replayed; reload the queue with `list`.
    pub history_truncated: bool,
}

/// Acknowledgement of a `send`: identical for every retry with the same `client_msg_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    /// The conversation.
    pub conversation: ConversationId,
    /// `seq` of the recorded message.
    pub seq: u64,
    /// Status after the send.
    pub status: Status,
    /// Owner after the send.
    pub owner: Option<AgentId>,
    /// Epoch after the send.
    pub epoch: u64,
}

/// Acknowledgement of an `edit`, `unsend` or `redact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendAck {
    /// The conversation.
    pub conversation: ConversationId,
    /// The message amended.
    pub target: u64,
    /// `seq` of the recorded amendment.
    pub seq: u64,
}

/// Acknowledgement of a `survey_answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyAck {
    /// The conversation.
    pub conversation: ConversationId,
    /// `seq` of the recorded `survey_answered` event.
    pub seq: u64,
    /// The engagement the answer granted (the tenant's reward), now in the end user's
    /// engagement history as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<chathub_domain::EngagementCard>,
    /// Why the tenant's reward was not granted (`not_entitled`, `expired`,
    /// `out_of_stock`, `already_redeemed`, `not_yet_valid`, `insufficient_points`,
    /// `not_in_segment`, `unknown_engagement`); absent when granted or when the tenant
    /// offers none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_refused: Option<String>,
}

/// A conversation's id with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its state.
    #[serde(flatten)]
    pub state: ConversationState,
}

/// Reply to `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The conversation and its state.
    #[serde(flatten)]
    pub view: ConversationView,
    /// How many events were replayed before this reply.
    pub replayed: u64,
    /// `true` when `since` was older than the retained history (or ahead of it): some
    /// events cannot be replayed; reload the conversation with `history`.
    pub history_truncated: bool,
    /// `true` when the server no longer holds the history `since` referred to (its data
    /// was lost: the `history_id` differs, or `since` is ahead of every event). Nothing is
    /// replayed; reload the conversation with `history`. Implies `history_truncated`.
    #[serde(default)]
    pub history_lost: bool,
    /// The tenant's retention policy, when it has one (events before its cut-off are
    /// never replayed: `history_truncated` says when some were skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

/// Reply to `open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The conversation and its state.
    #[serde(flatten)]
    pub view: ConversationView,
    /// Read marks of the participants.
    pub reads: Vec<ReadMark>,
}

/// How far one participant has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// Who.
    pub by: Author,
    /// Seen up to this `seq`.
    pub seq: u64,
}

/// Reply to `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The conversation.
    pub conversation: ConversationId,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Whether more events exist beyond this page in the direction asked.
    pub has_more: bool,
    /// Whether older events of the conversation are no longer kept, on a page that
    /// reaches back to the oldest kept one: show "earlier messages removed" (by the
    /// tenant's retention policy when `retention` is present — its cut-off says from
    /// when — or by an erasure, or a node's hot window).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier_removed: bool,
    /// The tenant's retention policy, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

/// The tenant's retention policy as a reply shows it: nothing older than `cutoff` is
/// kept or shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPolicy {
    /// Conversations are kept this many days after their last event.
    pub days: u32,
    /// Events before this (ms since the Unix epoch) were removed by the policy.
    pub cutoff: u64,
}

/// Reply to `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    /// The status listed.
    pub status: Status,
    /// Entries: unanswered oldest first, active and finished most recent first.
    pub items: Vec<QueueItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Reply to `engagement_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementHistoryReply {
    /// The conversation (the end user).
    pub conversation: ConversationId,
    /// Events, newest first.
    pub events: Vec<HistoryEvent>,
    /// Pass as `before` for older events; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// `true` when there is nothing to show at all (first page empty): "no history yet".
    pub no_history: bool,
}

/// Reply to `engagement_activity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityReply {
    /// The conversation (the end user).
    pub conversation: ConversationId,
    /// One entry per engagement type, in a fixed order.
    pub activity: Vec<TypeActivity>,
}

/// Recent events of one engagement type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeActivity {
    /// The type.
    #[serde(rename = "type")]
    pub engagement_type: EngagementType,
    /// Latest events, newest first (may be empty).
    pub events: Vec<HistoryEvent>,
}

/// Reply to `engagements_available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableReply {
    /// The conversation (the end user).
    pub conversation: ConversationId,
    /// Catalogue items the end user is entitled to now.
    pub items: Vec<CatalogueItem>,
}

/// Reply to `profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileReply {
    /// The conversation (the end user).
    pub conversation: ConversationId,
    /// The profile; absent when the brand never sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// Reply to `redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemReply {
    /// The catalogue item.
    pub engagement: String,
    /// The history event recorded.
    pub event: HistoryEvent,
}

/// Reply to `canned_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedListReply {
    /// Matching canned responses, by shortcut (placeholders not filled).
    pub items: Vec<CannedResponse>,
}

/// Reply to `agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentsReply {
    /// Every agent seen recently, with availability.
    pub agents: Vec<PresenceFrame>,
}
