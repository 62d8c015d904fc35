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
    /// More than one credential was given (a header and a query token, two query
    /// tokens, two headers): none is taken, whichever would be valid.
    #[error("ambiguous credentials: give exactly one token")]
    Ambiguous,
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
    /// Which verification key accepted the token (a fingerprint, not the key), so the
    /// session can be closed when that key is withdrawn.
    pub key: u64,
}

impl Identity {
    /// The server acting for one of `tenant`'s policies (retention, the stall policy,
    /// business hours): an admin named `subject`, with `privileges` only, whose
    /// commands the rules decide like anyone's.
    pub(crate) fn system(
        tenant: &TenantId,
        subject: &'static str,
        name: &'static str,
        privileges: Privileges,
    ) -> Result<Identity, String> {
        let id = chathub_domain::AgentId::new(subject).map_err(|e| e.to_string())?;
        Ok(Identity {
            tenant: tenant.clone(),
            role: Role::Admin,
            subject: subject.to_owned(),
            privileges,
            actor: Actor::Agent {
                id,
                admin: true,
                privileges,
                bot: false,
            },
            expires_at: u64::MAX,
            name: name.to_owned(),
            key: 0,
        })
    }
}

/// One accepted verification key.
struct Key {
    fingerprint: u64,
    decoding: DecodingKey,
}

/// A key's fingerprint: the first 8 bytes of its SHA-256.
fn fingerprint(secret: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Verifies tokens against the accepted keys (several during a rotation) and mints them
/// with the signing secret. Clones share the key set, so a reload reaches every session.
#[derive(Clone)]
pub struct Authenticator {
    keys: std::sync::Arc<std::sync::RwLock<Vec<Key>>>,
    encoding: EncodingKey,
    validation: Validation,
    config: AuthConfig,
}

impl Authenticator {
    /// An authenticator for `config` (its secrets file, if any, read now).
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let auth = Authenticator {
            keys: Default::default(),
            encoding: EncodingKey::from_secret(config.secret.as_bytes()),
            validation,
            config: config.clone(),
        };
        auth.reload_keys();
        auth
    }

    /// Rebuilds the accepted keys: the secret, the extra ones and the secrets file's
    /// lines (kept as they were when the file cannot be read). Returns how many.
    pub fn reload_keys(&self) -> usize {
        let mut secrets: Vec<String> = vec![self.config.secret.clone()];
        secrets.extend(self.config.verify_secrets.iter().cloned());
        if let Some(path) = &self.config.secrets_file {
            match std::fs::read_to_string(path) {
                Ok(text) => secrets.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "cannot read the secrets file; keeping the keys");
                    return self.keys.read().map_or(0, |k| k.len());
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets.dedup();
        let keys: Vec<Key> = secrets
            .iter()
            .map(|s| Key {
                fingerprint: fingerprint(s),
                decoding: DecodingKey::from_secret(s.as_bytes()),
            })
            .collect();
        let n = keys.len();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        n
    }

    /// Whether the key with this fingerprint is still accepted.
    pub fn key_is_active(&self, key: u64) -> bool {
        self.keys
            .read()
            .is_ok_and(|keys| keys.iter().any(|k| k.fingerprint == key))
    }

    /// Verifies `token` against every accepted key and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let keys = self.keys.read().map_err(|_| AuthError::Invalid)?;
        for key in keys.iter() {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => {
                    let mut id = identity(data.claims).ok_or(AuthError::Invalid)?;
                    id.key = key.fingerprint;
                    return Ok(id);
                }
                Err(e) => match e.kind() {
                    // The signature is this key's: the token is just too old.
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        return Err(AuthError::Expired);
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => continue,
                    _ => return Err(AuthError::Invalid),
                },
            }
        }
        Err(AuthError::Invalid)
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
            bot: role == Role::Bot,
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
        key: 0,
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
            ..AuthConfig::default()
        })
    }

    #[test]
    fn rotation_accepts_every_listed_key_and_forgets_removed_ones() {
        let old = auth("old");
        let new = auth("new");
        let dir = std::env::temp_dir().join(format!("chathub-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# accepted keys\nold\n").unwrap();
        let rotating = Authenticator::new(&AuthConfig {
            secret: "new".into(),
            secrets_file: Some(file.clone()),
            leeway_secs: 0,
            ..AuthConfig::default()
        });
        let by_old = rotating
            .verify(&old.mint("acme", "a", Role::Agent, None, 60).unwrap())
            .unwrap();
        let by_new = rotating
            .verify(&new.mint("acme", "a", Role::Agent, None, 60).unwrap())
            .unwrap();
        assert_ne!(by_old.key, by_new.key);
        assert!(rotating.key_is_active(by_old.key));
        // The old key is withdrawn: its tokens (and sessions) are no longer valid.
        std::fs::write(&file, "").unwrap();
        assert_eq!(rotating.reload_keys(), 1);
        assert!(!rotating.key_is_active(by_old.key));
        assert!(rotating.key_is_active(by_new.key));
        let again = old.mint("acme", "a", Role::Agent, None, 60).unwrap();
        assert_eq!(rotating.verify(&again).unwrap_err(), AuthError::Invalid);
        // An unreadable file keeps the keys as they were.
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rotating.reload_keys(), 1);
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
