//! Newtype identifiers. Every id that crosses a crate boundary is one of these, never a
//! bare `String`, so a tenant can never be passed where a conversation was meant.
//!
//! Ids are short printable strings (1 to [`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 - _ . : @`),
//! which keeps them safe inside Redis key names and channel names.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    #[error("id is empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("id is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The id holds a character outside `A-Z a-z 0-9 - _ . : @`.
    #[error("id holds a character outside A-Z a-z 0-9 - _ . : @")]
    BadCharacter,
}

/// Checks that `s` is a valid id (see the module docs).
pub fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

/// The OpenAPI schema of every id: what [`validate`] accepts.
#[cfg(feature = "openapi")]
pub fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some("^[A-Za-z0-9._:@-]+$"))
        .description(Some("1–64 characters of `A-Z a-z 0-9 - _ . : @`"))
        .into()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps `s` after checking it is a valid id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        // The OpenAPI schema says what `validate` accepts, so generated clients and
        // fuzzers (schemathesis) know an id's shape.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::ids::id_schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        // Deserialising validates, so a malformed id from the network is a decode error,
        // never a value that reaches a store key.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant (a brand). Nothing crosses tenants.
    TenantId
);
id_type!(
    /// A conversation within a tenant. There is exactly one conversation per end user of
    /// a tenant, so its id is the end user's id (see [`ConversationId::of_end_user`]).
    ConversationId
);
id_type!(
    /// A customer-care agent (admins are agents too) within a tenant.
    AgentId
);
id_type!(
    /// An end user (a brand's follower on a mobile app) within a tenant.
    EndUserId
);
id_type!(
    /// An attachment (an uploaded file) within a conversation.
    AttachmentId
);

impl ConversationId {
    /// The conversation of an end user: the one thread between the tenant and them.
    pub fn of_end_user(end_user: &EndUserId) -> Self {
        Self(end_user.0.clone())
    }

    /// The end user this conversation is with.
    pub fn end_user(&self) -> EndUserId {
        EndUserId(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_ids_and_refuses_others() {
        assert!(TenantId::new("acme").is_ok());
        assert!(AgentId::new("agent-1@acme.com").is_ok());
        assert_eq!(TenantId::new(""), Err(IdError::Empty));
        assert_eq!(TenantId::new("a b"), Err(IdError::BadCharacter));
        assert_eq!(TenantId::new("a{b}"), Err(IdError::BadCharacter));
        assert_eq!(TenantId::new("x".repeat(65)), Err(IdError::TooLong));
    }

    #[test]
    fn deserialising_validates() {
        let ok: Result<TenantId, _> = serde_json::from_str("\"acme\"");
        assert!(ok.is_ok());
        let bad: Result<TenantId, _> = serde_json::from_str("\"a b\"");
        assert!(bad.is_err());
    }

    #[test]
    fn conversation_of_end_user_round_trips() {
        let u = EndUserId::new("u-7").unwrap();
        assert_eq!(ConversationId::of_end_user(&u).end_user(), u);
    }
}
