//! Availability: `presence` (an agent sets this device available or away), `agents`
//! (who is available); and the session's side of it: a heartbeat per ping interval,
//! announcements to the tenant's agents, leaving when the socket ends.

use super::{Connection, Ctx, Failure, store_failed};
use crate::Backend;
use crate::auth::{Identity, now_millis};
use chathub_broker::{Broker, Channel, Envelope};
use chathub_domain::Privilege;
use chathub_domain::{Actor, Participant, Presence, Role};
use chathub_protocol::{AgentsReply, ErrorCode, PresenceFrame, Reply, ServerFrame};
use chathub_store::{Heartbeat, WorkspaceStore};

/// The presence record key of an identity: agents and admins are `agent:<id>`.
pub(crate) fn presence_key(identity: &Identity) -> String {
    Participant::of(&identity.actor).key()
}

/// `presence`.
pub(crate) async fn set<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    presence: Presence,
) -> Result<Reply, Failure> {
    cx.require_agent("presence")?;
    if presence == Presence::Offline {
        return Err(Failure::bad_request(
            "`presence` is `available` or `away` (offline is having no session)",
        ));
    }
    *conn.presence() = presence;
    heartbeat(cx, conn.session_key(), presence).await;
    let frame = announce(cx)
        .await
        .ok_or_else(|| Failure::new(ErrorCode::Unavailable, "cannot read presence; retry"))?;
    Ok(Reply::Presence(frame))
}

/// `agents`: every agent of the tenant with their aggregated availability.
pub(crate) async fn agents<K: Backend>(cx: &Ctx<'_, K>) -> Result<Reply, Failure> {
    cx.require_agent("agents")?;
    let agents = cx
        .node
        .backend
        .workspace()
        .presence(&cx.identity.tenant, now_millis())
        .await
        .map_err(store_failed)?
        .into_iter()
        .filter_map(|e| {
            Some(PresenceFrame {
                agent: Participant::parse(&e.who)?.as_agent()?.to_string(),
                presence: e.presence,
                last_seen: Some(e.last_seen),
                name: e.name,
            })
        })
        .collect();
    Ok(Reply::Agents(AgentsReply { agents }))
}

/// This session is alive (with its presence) for three ping intervals.
pub(crate) async fn heartbeat<K: Backend>(cx: &Ctx<'_, K>, session: &str, presence: Presence) {
    let ttl = cx.node.config.ping_interval.as_millis() as u64 * 3;
    let who = presence_key(cx.identity);
    let beat = Heartbeat {
        who: &who,
        session,
        presence,
        now: now_millis(),
        ttl_ms: ttl,
        listed: cx.identity.role != Role::EndUser,
        name: Some(&cx.identity.name),
        supervisor: cx.identity.privileges.has(Privilege::ChatSupervise),
    };
    let beat = cx
        .node
        .backend
        .workspace()
        .heartbeat(&cx.identity.tenant, &beat);
    if let Err(e) = beat.await {
        tracing::debug!(error = %e, "heartbeat failed");
    }
}

/// Tells the tenant's agents this agent's aggregated availability (nothing for end
/// users); returns what it told.
pub(crate) async fn announce<K: Backend>(cx: &Ctx<'_, K>) -> Option<PresenceFrame> {
    let Actor::Agent { id, .. } = &cx.identity.actor else {
        return None;
    };
    let tenant = &cx.identity.tenant;
    let entry = cx
        .node
        .backend
        .workspace()
        .presence_of(tenant, &presence_key(cx.identity), now_millis())
        .await
        .ok()??;
    let frame = PresenceFrame {
        agent: id.to_string(),
        presence: entry.presence,
        last_seen: Some(entry.last_seen),
        name: entry.name,
    };
    let agents = Channel::agents(tenant);
    let envelope = Envelope::encode(&agents, None, &ServerFrame::Presence(frame.clone()));
    if let Err(e) = cx.node.backend.broker().publish(&agents, envelope).await {
        tracing::debug!(error = %e, "presence publish failed");
    }
    Some(frame)
}

/// The session `session` ended: its presence record goes, and the agents hear the
/// person's availability now (other devices may still be online).
pub(crate) async fn went_offline<K: Backend>(cx: &Ctx<'_, K>, session: &str) {
    let who = presence_key(cx.identity);
    let left = cx
        .node
        .backend
        .workspace()
        .leave(&cx.identity.tenant, &who, session);
    if let Err(e) = left.await {
        tracing::debug!(error = %e, "presence leave failed");
    }
    announce(cx).await;
}

/// Watches the availability of the agents of every tenant this node serves, each ping
/// interval, and tells the tenant's agents about a change nobody announced: an agent
/// whose sessions lived on a node that died turns `offline` when their heartbeats
/// expire (three ping intervals), and no session of theirs is left to say so. Every node
/// watches; a change announced twice is the same state twice.
pub(crate) async fn watch<K: Backend>(node: std::sync::Arc<crate::Node<K>>) {
    use std::collections::HashMap;
    let mut known: HashMap<(chathub_domain::TenantId, String), Presence> = HashMap::new();
    loop {
        tokio::time::sleep(node.config.ping_interval).await;
        let tenants: std::collections::HashSet<chathub_domain::TenantId> =
            node.per_subject.iter().map(|e| e.key().0.clone()).collect();
        known.retain(|(t, _), _| tenants.contains(t));
        for tenant in tenants {
            let entries = match node
                .backend
                .workspace()
                .presence(&tenant, now_millis())
                .await
            {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::debug!(error = %e, "presence watch: cannot read presence");
                    continue;
                }
            };
            for entry in entries {
                let Some(agent) = Participant::parse(&entry.who)
                    .and_then(|p| p.as_agent().map(ToString::to_string))
                else {
                    continue;
                };
                let before = known.insert((tenant.clone(), entry.who.clone()), entry.presence);
                // Only what went offline unannounced: other changes come from the
                // sessions themselves.
                if before.is_some_and(|b| b != Presence::Offline)
                    && entry.presence == Presence::Offline
                {
                    let frame = ServerFrame::Presence(PresenceFrame {
                        agent,
                        presence: entry.presence,
                        last_seen: Some(entry.last_seen),
                        name: entry.name,
                    });
                    let agents = Channel::agents(&tenant);
                    let envelope = Envelope::encode(&agents, None, &frame);
                    if let Err(e) = node.backend.broker().publish(&agents, envelope).await {
                        tracing::debug!(error = %e, "presence watch: publish failed");
                    }
                }
            }
        }
    }
}
