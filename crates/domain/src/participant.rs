//! The typed key of a person in presence records and read marks: one spelling for
//! everyone (admins are agents here: one person, one availability, one read mark).

use crate::conversation::Author;
use crate::ids::{AgentId, EndUserId};
use crate::roles::{Actor, Role};
use std::fmt;

/// A person as presence and read marks know them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Participant {
    /// An end user.
    EndUser(EndUserId),
    /// An agent or admin.
    Agent(AgentId),
}

impl Participant {
    /// The participant an authenticated actor is.
    pub fn of(actor: &Actor) -> Participant {
        match actor {
            Actor::EndUser(id) => Participant::EndUser(id.clone()),
            Actor::Agent { id, .. } => Participant::Agent(id.clone()),
        }
    }

    /// The end user of a conversation.
    pub fn end_user(id: &EndUserId) -> Participant {
        Participant::EndUser(id.clone())
    }

    /// An agent.
    pub fn agent(id: &AgentId) -> Participant {
        Participant::Agent(id.clone())
    }

    /// The stored key: `end_user:<id>` or `agent:<id>` (ids may hold `:`; the role is
    /// everything before the first one).
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Parses a stored key; `None` for anything that is not one.
    pub fn parse(key: &str) -> Option<Participant> {
        let (role, id) = key.split_once(':')?;
        match role {
            "end_user" => EndUserId::new(id).ok().map(Participant::EndUser),
            "agent" => AgentId::new(id).ok().map(Participant::Agent),
            _ => None,
        }
    }

    /// The agent, when this is one.
    pub fn as_agent(&self) -> Option<&AgentId> {
        match self {
            Participant::Agent(id) => Some(id),
            Participant::EndUser(_) => None,
        }
    }

    /// As an author in frames (agents and admins alike show as `agent`).
    pub fn author(&self) -> Author {
        match self {
            Participant::EndUser(id) => Author {
                role: Role::EndUser,
                id: id.as_str().to_owned(),
            },
            Participant::Agent(id) => Author {
                role: Role::Agent,
                id: id.as_str().to_owned(),
            },
        }
    }
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Participant::EndUser(id) => write!(f, "end_user:{id}"),
            Participant::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Privileges;

    #[test]
    fn admins_and_agents_share_one_spelling() {
        let id = AgentId::new("carol").unwrap();
        let admin = Actor::Agent {
            id: id.clone(),
            admin: true,
            privileges: Privileges::ALL,
            bot: false,
        };
        let agent = Actor::Agent {
            id,
            admin: false,
            privileges: Privileges::ALL,
            bot: false,
        };
        assert_eq!(Participant::of(&admin), Participant::of(&agent));
        assert_eq!(Participant::of(&admin).key(), "agent:carol");
    }

    #[test]
    fn keys_round_trip_with_colons_in_ids() {
        for key in [
            "end_user:u-1",
            "agent:a:b",
            "end_user:x:y:z",
            "agent:ag@b.c",
        ] {
            let p = Participant::parse(key).unwrap();
            assert_eq!(p.key(), key);
        }
        // A user `agent:x` and an agent `x` are different people with different keys.
        let user = Participant::end_user(&EndUserId::new("agent:x").unwrap());
        let agent = Participant::agent(&AgentId::new("x").unwrap());
        assert_ne!(user.key(), agent.key());
        assert_eq!(Participant::parse(&user.key()), Some(user));
        assert_eq!(Participant::parse("admin:carol"), None);
        assert_eq!(Participant::parse("nobody"), None);
    }
}
