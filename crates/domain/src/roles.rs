//! Roles, privileges and the authenticated actor of a command.

use crate::ids::{AgentId, EndUserId};
use serde::{Deserialize, Serialize};

/// What kind of participant a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An end user on a mobile app; may only touch their own conversation.
    EndUser,
    /// A customer-care agent.
    Agent,
    /// An agent with administrative rights (finish any conversation, disable chat, …).
    Admin,
    /// A program answering first for the tenant (its configured bot): it owns the new
    /// and reopened conversations the tenant routes to it, answers through the same
    /// protocol, and hands off to the humans; it never takes a conversation.
    Bot,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EndUser => "end_user",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Bot => "bot",
        }
    }

    /// The privileges a token of this role gets when it names none explicitly.
    pub fn default_privileges(self) -> Privileges {
        match self {
            Role::EndUser => Privileges::EMPTY,
            Role::Agent => Privileges::of(&[
                Privilege::ChatTake,
                Privilege::ChatFinish,
                Privilege::EngagementSend,
            ]),
            Role::Admin => Privileges::ALL,
            // A bot finishes what it answered; it never takes, so `chat.take` is moot.
            Role::Bot => Privileges::of(&[Privilege::ChatFinish]),
        }
    }
}

/// One privilege, checked on the server for every command that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Privilege {
    /// Take an unanswered or finished conversation, or take one over from another agent.
    #[serde(rename = "chat.take")]
    ChatTake,
    /// Finish a conversation (one's own; admins any).
    #[serde(rename = "chat.finish")]
    ChatFinish,
    /// Disable or enable two-way chat.
    #[serde(rename = "chat.disable")]
    ChatDisable,
    /// Send an engagement through the chat.
    #[serde(rename = "engagement.send")]
    EngagementSend,
    /// Create, update and delete canned responses.
    #[serde(rename = "canned.manage")]
    CannedManage,
    /// Manage the engagement catalogue, end-user profiles and history (admin HTTP API).
    #[serde(rename = "engagement.manage")]
    EngagementManage,
    /// Export everything held about one end user (a data-subject access request).
    #[serde(rename = "data.export")]
    DataExport,
    /// Erase one end user from every store.
    #[serde(rename = "data.erase")]
    DataErase,
    /// Be alerted when a conversation waits past the tenant's escalation step (a
    /// supervisor: see the alert schedule).
    #[serde(rename = "chat.supervise")]
    ChatSupervise,
}

impl Privilege {
    /// Every privilege, in bit order.
    pub const ALL: [Privilege; 9] = [
        Privilege::ChatTake,
        Privilege::ChatFinish,
        Privilege::ChatDisable,
        Privilege::EngagementSend,
        Privilege::CannedManage,
        Privilege::EngagementManage,
        Privilege::DataExport,
        Privilege::DataErase,
        Privilege::ChatSupervise,
    ];

    /// The wire name, e.g. `chat.take`.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::ChatTake => "chat.take",
            Privilege::ChatFinish => "chat.finish",
            Privilege::ChatDisable => "chat.disable",
            Privilege::EngagementSend => "engagement.send",
            Privilege::CannedManage => "canned.manage",
            Privilege::EngagementManage => "engagement.manage",
            Privilege::DataExport => "data.export",
            Privilege::DataErase => "data.erase",
            Privilege::ChatSupervise => "chat.supervise",
        }
    }

    /// Parses a wire name; `None` for a name this version does not know.
    pub fn parse(s: &str) -> Option<Privilege> {
        Privilege::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of privileges (a small bit set; copying it is free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Privileges(u32);

impl Privileges {
    /// No privilege.
    pub const EMPTY: Privileges = Privileges(0);
    /// Every privilege.
    pub const ALL: Privileges = Privileges((1 << Privilege::ALL.len()) - 1);

    /// The set holding exactly `list`.
    pub fn of(list: &[Privilege]) -> Privileges {
        Privileges(list.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Whether `p` is in the set.
    pub fn has(self, p: Privilege) -> bool {
        self.0 & p.bit() != 0
    }

    /// The set as bits, bit `i` for `Privilege::ALL[i]` (the Redis script's encoding).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The privileges in the set, in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::ALL.into_iter().filter(move |p| self.has(*p))
    }
}

impl Serialize for Privileges {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Privileges {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Privilege>::deserialize(d)?;
        Ok(Privileges::of(&list))
    }
}

/// Who issues a command, as established by authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An end user (only ever acts on their own conversation).
    EndUser(EndUserId),
    /// An agent, admin or bot with the privileges of their token.
    Agent {
        /// The agent (a bot's id is in the agents' namespace: it owns conversations).
        id: AgentId,
        /// Whether the agent has the admin role.
        admin: bool,
        /// The agent's privileges.
        privileges: Privileges,
        /// Whether it is a bot (role `bot`): see [`Role::Bot`].
        bot: bool,
    },
}

impl Actor {
    /// Whether the actor holds privilege `p` (end users hold none).
    pub fn has(&self, p: Privilege) -> bool {
        match self {
            Actor::EndUser(_) => false,
            Actor::Agent { privileges, .. } => privileges.has(p),
        }
    }

    /// The role of the actor.
    pub fn role(&self) -> Role {
        match self {
            Actor::EndUser(_) => Role::EndUser,
            Actor::Agent { bot: true, .. } => Role::Bot,
            Actor::Agent { admin: true, .. } => Role::Admin,
            Actor::Agent { admin: false, .. } => Role::Agent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_names_round_trip() {
        for p in Privilege::ALL {
            assert_eq!(Privilege::parse(p.as_str()), Some(p));
        }
        assert_eq!(Privilege::parse("chat.everything"), None);
    }

    #[test]
    fn privilege_sets() {
        let set = Privileges::of(&[Privilege::ChatTake, Privilege::CannedManage]);
        assert!(set.has(Privilege::ChatTake));
        assert!(!set.has(Privilege::ChatFinish));
        assert_eq!(set.iter().count(), 2);
        assert!(Privilege::ALL.iter().all(|p| Privileges::ALL.has(*p)));
        assert!(!Role::EndUser.default_privileges().has(Privilege::ChatTake));
        assert!(!Role::Agent.default_privileges().has(Privilege::ChatDisable));
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["chat.take","canned.manage"]"#);
        assert_eq!(serde_json::from_str::<Privileges>(&json).unwrap(), set);
    }
}
