//! The chathub domain: identifiers, roles and privileges, and the conversation state
//! machine. Pure: no I/O, no clock, no async runtime.
//!
//! # Layout
//! - [`ids`]: newtype identifiers (`TenantId`, `ConversationId`, `AgentId`, `EndUserId`,
//!   `AttachmentId`).
//! - [`roles`]: roles, privileges and the authenticated [`Actor`](roles::Actor).
//! - [`participant`]: the typed key of a person in presence and read marks.
//! - [`engagement`]: engagement catalogue, profiles, history, and entitlement rules.
//! - [`attachment`]: which files a tenant accepts (policy, known types, names).
//! - [`canned`]: canned responses and their placeholders.
//! - [`conversation`]: the state machine `(state, actor, command) -> outcome`, which is
//!   the specification every backend applies (the embedded backend calls it directly; the
//!   Redis backend re-states it in Lua and is checked against it by a differential test).

pub mod attachment;
pub mod canned;
pub mod conversation;
pub mod engagement;
pub mod hours;
pub mod ids;
pub mod participant;
pub mod presence;
pub mod roles;

pub use conversation::{
    Amended, AttachmentCard, AttachmentStatus, Author, Cause, Change, ChangeKind, Command, Context,
    ConversationState, EngagementCard, Event, EventBody, HandoffField, MessageContent, Outcome,
    Refusal, ReleaseReason, Status, Transition, apply, apply_in,
};
pub use ids::{AgentId, AttachmentId, ConversationId, EndUserId, IdError, TenantId};
pub use participant::Participant;
pub use presence::Presence;
pub use roles::{Actor, Privilege, Privileges, Role};
