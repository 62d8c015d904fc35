//! The chathub domain: identifiers, roles and privileges, and the conversation state
//! machine. Pure: no I/O, no clock, no async runtime.
//!
//! # Layout
//! - [`ids`]: newtype identifiers (`TenantId`, `ConversationId`, `AgentId`, `EndUserId`).
//! - [`roles`]: roles, privileges and the authenticated [`Actor`](roles::Actor).
//! - [`conversation`]: the state machine `(state, actor, command) -> outcome`, which is
//!   the specification every backend applies (the embedded backend calls it directly; the
//!   Redis backend re-states it in Lua and is checked against it by a differential test).

pub mod conversation;
pub mod ids;
pub mod roles;

pub use conversation::{
    Author, Cause, Command, ConversationState, Event, EventBody, MessageContent, Outcome, Refusal,
    Status, Transition, apply,
};
pub use ids::{AgentId, ConversationId, EndUserId, IdError, TenantId};
pub use roles::{Actor, Privilege, Privileges, Role};
