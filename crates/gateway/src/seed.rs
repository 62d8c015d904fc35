//! Data a node loads into its backend before it serves, and the people the console's
//! one-click sign-in offers (`/demo-tokens.json`). The gateway knows no content: the
//! binary's demo tenant (`chathub serve --demo`) is one such seed.

use crate::auth::{AuthError, Authenticator};
use crate::backend::Backend;
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{CatalogueItem, HistoryEvent, Profile};
use chathub_domain::{
    Actor, Command, Context, ConversationId, EndUserId, MessageContent, Role, TenantId,
};
use chathub_ownership::{ApplyRequest, Ownership};
use chathub_store::{ConversationStore, WorkspaceStore};

/// What a seed puts in one tenant. Loading it twice changes nothing (upserts by id,
/// waiting messages by their `client_msg_id`).
#[derive(Debug, Clone)]
pub struct Seed {
    /// The tenant.
    pub tenant: TenantId,
    /// The people who may sign in with one click, with their display names.
    pub people: Vec<SeedPerson>,
    /// How long their one-click tokens are valid, seconds.
    pub token_ttl_secs: u64,
    /// The engagement catalogue.
    pub catalogue: Vec<CatalogueItem>,
    /// End users' profiles.
    pub profiles: Vec<(EndUserId, Profile)>,
    /// End users' engagement history.
    pub history: Vec<(EndUserId, HistoryEvent)>,
    /// Canned responses.
    pub canned: Vec<CannedResponse>,
    /// Messages of end users waiting in the queue: (user, client_msg_id, text), each
    /// sent only into a conversation without events.
    pub waiting: Vec<(EndUserId, String, String)>,
}

/// One person of a seed.
#[derive(Debug, Clone)]
pub struct SeedPerson {
    /// Their role.
    pub role: Role,
    /// Their id (for end users, also their conversation's id).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A ready-to-use token for one person of a seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignIn {
    /// `end_user`, `agent` or `admin`.
    pub role: &'static str,
    /// The person's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A signed token, valid for the seed's `token_ttl_secs`.
    pub token: String,
}

impl Seed {
    /// A token for every person of the seed.
    pub fn sign_ins(&self, auth: &Authenticator) -> Result<Vec<SignIn>, AuthError> {
        self.people
            .iter()
            .map(|p| {
                let token = auth.mint_named(
                    self.tenant.as_str(),
                    &p.id,
                    p.role,
                    None,
                    self.token_ttl_secs,
                    Some(p.name.clone()),
                )?;
                Ok(SignIn {
                    role: p.role.as_str(),
                    id: p.id.clone(),
                    name: p.name.clone(),
                    token,
                })
            })
            .collect()
    }

    /// Loads the seed into `backend`.
    pub async fn load<K: Backend>(&self, backend: &K, now: u64) -> Result<(), String> {
        let (t, ws) = (&self.tenant, backend.workspace());
        let err = |e: chathub_store::StoreError| e.to_string();
        for item in &self.catalogue {
            ws.upsert_item(t, item.clone()).await.map_err(err)?;
        }
        for (user, profile) in &self.profiles {
            ws.upsert_profile(t, user, profile.clone())
                .await
                .map_err(err)?;
        }
        for (user, event) in &self.history {
            ws.add_history(t, user, event.clone()).await.map_err(err)?;
        }
        for canned in &self.canned {
            ws.upsert_canned(t, canned.clone()).await.map_err(err)?;
        }
        for (user, client_msg_id, text) in &self.waiting {
            // Only into a conversation that has nothing yet: on a node that keeps its
            // data, a restart long after the dedup window must not send it again.
            let conversation = ConversationId::of_end_user(user);
            let state = backend.store().state(t, &conversation).await.map_err(err)?;
            if state.seq > 0 {
                continue;
            }
            let request = ApplyRequest {
                tenant: t.clone(),
                conversation: ConversationId::of_end_user(user),
                actor: Actor::EndUser(user.clone()),
                command: Command::Send {
                    content: MessageContent::Text { text: text.clone() },
                    client_msg_id: Some(client_msg_id.clone()),
                    seen_epoch: None,
                },
                at: now,
                context: Context::default(),
            };
            backend
                .ownership()
                .apply(request)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
