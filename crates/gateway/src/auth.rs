//! Handshake authentication: HS256 JWTs naming tenant, subject, role, privileges, expiry.

use crate::config::AuthConfig;
use chathub_domain::{Actor, AgentId, EndUserId, Privilege, Privileges, Role, TenantId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The claims of a chathub token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Tenant (brand) id.
    pub tenant: String,
    /// Subject: the end user's or agent's id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Privileges; absent means the role's defaults. Unknown names are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Vec<String>>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Display name (agents: fills `{agent_name}` in canned responses); default: `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a token was refused (the handshake answers HTTP 401 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in `Authorization: Bearer …` nor `?token=…`.
    #[error("missing token")]
    Missing,
    /// The token is expired.
    #[error("token expired")]
    Expired,
    /// The token is malformed, wrongly signed or names invalid ids.
    #[error("invalid token")]
    Invalid,
    /// The token could not be minted (bad ids or encoding failure).
    #[error("cannot mint token: {0}")]
    Mint(String),
}

/// An authenticated connection's identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Tenant.
    pub tenant: TenantId,
    /// Role.
    pub role: Role,
    /// Subject id as given in the token.
    pub subject: String,
    /// Effective privileges.
    pub privileges: Privileges,
    /// The actor for the state machine.
    pub actor: Actor,
    /// Token expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Display name.
    pub name: String,
}

/// Verifies and mints tokens with one secret.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl Authenticator {
    /// An authenticator for `config`.
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Authenticator {
            decoding: DecodingKey::from_secret(config.secret.as_bytes()),
            encoding: EncodingKey::from_secret(config.secret.as_bytes()),
            validation,
        }
    }

    /// Verifies `token` and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        identity(data.claims).ok_or(AuthError::Invalid)
    }

    /// Mints a token for `tenant`/`subject` with `role`, valid for `ttl_secs`.
    /// `privileges: None` gives the role's defaults.
    pub fn mint(
        &self,
        tenant: &str,
        subject: &str,
        role: Role,
        privileges: Option<Vec<String>>,
        ttl_secs: u64,
    ) -> Result<String, AuthError> {
        self.mint_named(tenant, subject, role, privileges, ttl_secs, None)
    }

    /// [`Authenticator::mint`] with a display name.
    pub fn mint_named(
        &self,
        tenant: &str,
        subject: &str,
        role: Role,
        privileges: Option<Vec<String>>,
        ttl_secs: u64,
        name: Option<String>,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            tenant: tenant.to_owned(),
            sub: subject.to_owned(),
            role,
            privileges,
            exp: now_secs() + ttl_secs,
            name,
        };
        identity(claims.clone())
            .ok_or_else(|| AuthError::Mint("invalid tenant or subject id".into()))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Mint(e.to_string()))
    }
}

fn identity(claims: Claims) -> Option<Identity> {
    let tenant = TenantId::new(claims.tenant).ok()?;
    let privileges = match (&claims.privileges, claims.role) {
        (_, Role::EndUser) => Privileges::EMPTY,
        (None, role) => role.default_privileges(),
        (Some(list), _) => {
            let known: Vec<Privilege> = list.iter().filter_map(|p| Privilege::parse(p)).collect();
            Privileges::of(&known)
        }
    };
    let actor = match claims.role {
        Role::EndUser => Actor::EndUser(EndUserId::new(claims.sub.clone()).ok()?),
        role => Actor::Agent {
            id: AgentId::new(claims.sub.clone()).ok()?,
            admin: role == Role::Admin,
            privileges,
        },
    };
    Some(Identity {
        tenant,
        role: claims.role,
        subject: claims.sub.clone(),
        privileges,
        actor,
        expires_at: claims.exp,
        name: claims.name.unwrap_or(claims.sub),
    })
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str) -> Authenticator {
        Authenticator::new(&AuthConfig {
            secret: secret.into(),
            leeway_secs: 0,
        })
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let a = auth("s1");
        let t = a.mint("acme", "alice", Role::Agent, None, 60).unwrap();
        let id = a.verify(&t).unwrap();
        assert_eq!(id.tenant.as_str(), "acme");
        assert_eq!(id.role, Role::Agent);
        assert!(id.privileges.has(Privilege::ChatTake));
        assert_eq!(auth("s2").verify(&t).unwrap_err(), AuthError::Invalid);
        assert_eq!(a.verify("garbage").unwrap_err(), AuthError::Invalid);
    }

    #[test]
    fn explicit_privileges_replace_the_defaults_and_end_users_get_none() {
        let a = auth("s");
        let t = a
            .mint(
                "acme",
                "bob",
                Role::Agent,
                Some(vec!["chat.finish".into(), "x.y".into()]),
                60,
            )
            .unwrap();
        let id = a.verify(&t).unwrap();
        assert!(id.privileges.has(Privilege::ChatFinish));
        assert!(!id.privileges.has(Privilege::ChatTake));
        let t = a
            .mint(
                "acme",
                "u1",
                Role::EndUser,
                Some(vec!["chat.take".into()]),
                60,
            )
            .unwrap();
        assert_eq!(a.verify(&t).unwrap().privileges, Privileges::EMPTY);
    }

    #[test]
    fn expired_and_invalid_ids_are_refused() {
        let a = auth("s");
        let claims = Claims {
            tenant: "acme".into(),
            sub: "u1".into(),
            role: Role::EndUser,
            privileges: None,
            exp: now_secs() - 100,
            name: None,
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.encoding).unwrap();
        assert_eq!(a.verify(&t).unwrap_err(), AuthError::Expired);
        assert!(a.mint("bad tenant", "u1", Role::EndUser, None, 60).is_err());
    }
}
