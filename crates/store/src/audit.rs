//! The audit log: every admin action of a tenant (the chat switch, the attachment policy,
//! the search configuration, catalogue and canned changes, a conversation disabled or
//! enabled), recorded append-only with who, when, what and its detail, newest first to
//! read, and kept for the node's audit retention (not the tenant's: a tenant's admins
//! cannot shorten the record of what they did).

use chathub_domain::Author;
use serde::{Deserialize, Serialize};

/// What an admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// The tenant-wide chat switch was set (`detail.chat_disabled`).
    TenantChatSwitched,
    /// The attachment policy was replaced (`detail`: the policy).
    AttachmentPolicySet,
    /// The text search configuration was set (`detail.config`).
    SearchConfigSet,
    /// A catalogue item was created or replaced (`target`: its id; `detail`: the item).
    CatalogueItemPut,
    /// A catalogue item was removed (`target`: its id).
    CatalogueItemDeleted,
    /// A canned response was created or replaced (`target`: its id; `detail`: it).
    CannedPut,
    /// A canned response was removed (`target`: its id).
    CannedDeleted,
    /// Two-way chat was disabled on a conversation (`target`: the conversation).
    ConversationDisabled,
    /// Two-way chat was enabled again on a conversation (`target`: the conversation).
    ConversationEnabled,
    /// Everything held about an end user was exported (`target`: the user; `detail`:
    /// the counts).
    UserExported,
    /// An end user was erased (`target`: the user; `detail`: the receipt's counts).
    UserErased,
    /// The retention policy was set (`detail.retention_days`, `null`: none).
    RetentionSet,
    /// The retention sweep removed what the policy no longer keeps (`detail`: its cut-off
    /// and counts; the actor is the server).
    RetentionSwept,
    /// The edit window was set (`detail.edit_window_secs`).
    EditWindowSet,
    /// A message was redacted (`detail`: its `seq`, the redaction's `seq`, the reason).
    MessageRedacted,
    /// The satisfaction survey was set (`detail.survey`: its prompt and reward, `null`:
    /// none).
    SurveySet,
    /// The stall policy was set (`detail.release`: its limits, `null`: none).
    ReleasePolicySet,
    /// The alert schedule was set (`detail.alerts`: its steps, `null`: none).
    AlertScheduleSet,
    /// The business hours were set (`detail.hours`: the schedule, `null`: always open).
    BusinessHoursSet,
    /// The tenant's bot was set (`detail.bot`: `{agent}`, `null`: none).
    BotSet,
}

impl AuditAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TenantChatSwitched => "tenant_chat_switched",
            AuditAction::AttachmentPolicySet => "attachment_policy_set",
            AuditAction::SearchConfigSet => "search_config_set",
            AuditAction::CatalogueItemPut => "catalogue_item_put",
            AuditAction::CatalogueItemDeleted => "catalogue_item_deleted",
            AuditAction::CannedPut => "canned_put",
            AuditAction::CannedDeleted => "canned_deleted",
            AuditAction::ConversationDisabled => "conversation_disabled",
            AuditAction::ConversationEnabled => "conversation_enabled",
            AuditAction::UserExported => "user_exported",
            AuditAction::UserErased => "user_erased",
            AuditAction::RetentionSet => "retention_set",
            AuditAction::RetentionSwept => "retention_swept",
            AuditAction::EditWindowSet => "edit_window_set",
            AuditAction::MessageRedacted => "message_redacted",
            AuditAction::SurveySet => "survey_set",
            AuditAction::ReleasePolicySet => "release_policy_set",
            AuditAction::AlertScheduleSet => "alert_schedule_set",
            AuditAction::BusinessHoursSet => "business_hours_set",
            AuditAction::BotSet => "bot_set",
        }
    }
}

/// One recorded admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its position in the tenant's log (opaque; pass as `before` to page on), given by
    /// the store when recorded.
    #[serde(default)]
    pub cursor: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// Who did it.
    pub actor: Author,
    /// What they did.
    pub action: AuditAction,
    /// What it was done to (an item, a canned response, a conversation), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The new value, or the receipt.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for older entries; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl AuditPage {
    /// The page of `read` (up to `limit + 1` entries, newest first, as a store read
    /// them): the first `limit`, and a cursor when there was one more.
    pub fn of(mut read: Vec<AuditEntry>, limit: usize) -> AuditPage {
        let next_cursor = if read.len() > limit {
            read.truncate(limit);
            read.last().map(|e| e.cursor.clone())
        } else {
            None
        };
        AuditPage {
            entries: read,
            next_cursor,
        }
    }
}
