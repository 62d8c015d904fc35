//! `script-cost`: what Redis itself spends on each kind of command, measured by Redis
//! (`INFO commandstats`), not by the client: `--messages` commands of one kind applied
//! through `RedisOwnership` to a spawned redis-server, spread over `--conversations`
//! conversations, then the server's CPU per command and its split by Redis command (the
//! script, and each command the script ran). The kinds: an end user's message to a
//! waiting conversation, an agent's message to the conversation it owns, the same with a
//! `client_msg_id` (the dedup key), and agents' messages 64 at a time (pipelined, as
//! under load: what per-call networking costs shows as the difference).

use crate::report::Report;
use anyhow::Result;
use chathub_domain::{
    Actor, AgentId, Command, ConversationId, EndUserId, MessageContent, Role, TenantId,
};
use chathub_ownership::{ApplyRequest, Decision, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_store::RedisKeys;
use chathub_testkit::RedisServer;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;

/// One kind of command measured.
#[derive(Clone, Copy, Debug)]
enum Kind {
    EndUserMessage,
    AgentMessage,
    AgentMessageWithId,
    /// Agents' messages again, [`IN_FLIGHT`] at once (as a loaded node sends them: the
    /// connection pipelines them).
    AgentMessageConcurrent,
}

/// Commands in flight at once for [`Kind::AgentMessageConcurrent`].
const IN_FLIGHT: usize = 64;

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::EndUserMessage => "end user message (unanswered)",
            Kind::AgentMessage => "agent message (owned)",
            Kind::AgentMessageWithId => "agent message with client_msg_id",
            Kind::AgentMessageConcurrent => "agent message, 64 in flight",
        }
    }
}

fn send(
    tenant: &TenantId,
    conversation: usize,
    actor: Actor,
    epoch: Option<u64>,
    id: Option<String>,
) -> ApplyRequest {
    let user = EndUserId::new(format!("u{conversation}")).expect("valid id");
    ApplyRequest {
        tenant: tenant.clone(),
        conversation: ConversationId::of_end_user(&user),
        actor,
        command: Command::Send {
            content: MessageContent::Text {
                text: "hello, my parcel is late".into(),
            },
            client_msg_id: id,
            seen_epoch: epoch,
        },
        at: 1_764_072_000_000,
        context: Default::default(),
    }
}

/// `INFO commandstats` as command → (calls, usec).
pub(crate) async fn commandstats(
    conn: &mut ConnectionManager,
) -> Result<BTreeMap<String, (u64, u64)>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut stats = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        stats.insert(name.to_owned(), (field("calls="), field("usec=")));
    }
    Ok(stats)
}

/// What Redis ran per message between two `INFO commandstats` snapshots, one line per
/// command: µs per message (its own time; a script's includes the commands it called)
/// and calls per message, busiest first. Empty when either snapshot is missing.
pub(crate) fn per_message_split(
    before: &Option<BTreeMap<String, (u64, u64)>>,
    after: &Option<BTreeMap<String, (u64, u64)>>,
    messages: u64,
) -> Vec<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let messages = messages.max(1) as f64;
    let mut rows: Vec<(f64, String)> = after
        .iter()
        .filter(|(name, _)| !["info", "config|resetstat"].contains(&name.as_str()))
        .filter_map(|(name, (calls, usec))| {
            let (calls0, usec0) = before.get(name).copied().unwrap_or((0, 0));
            let calls = calls.saturating_sub(calls0);
            let usec = usec.saturating_sub(usec0) as f64 / messages;
            (calls > 0).then(|| {
                let line = format!(
                    "  redis {name:<22} {usec:>6.2} µs/message  {:>6.3} calls/message",
                    calls as f64 / messages
                );
                (usec, line)
            })
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut lines = vec!["redis commands (INFO commandstats over the measured window):".to_owned()];
    lines.extend(rows.into_iter().map(|(_, line)| line));
    lines
}

/// The server's user + system CPU, µs (`INFO cpu`).
async fn server_cpu_us(conn: &mut ConnectionManager) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let get = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((get("used_cpu_user:") + get("used_cpu_sys:")) * 1e6)
}

/// Runs the scenario.
pub(crate) async fn script_cost(conversations: usize, messages: u64) -> Result<Report> {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url())?;
    let conn = client.get_connection_manager().await?;
    let mut admin = client.get_connection_manager().await?;
    let conversations = conversations.max(1);
    let tenant = TenantId::new("bench").expect("valid id");
    let ownership = RedisOwnership::new(
        conn,
        RedisKeys::new("bench"),
        RedisOwnershipConfig::default(),
    );
    let agent = |c: usize| Actor::Agent {
        id: AgentId::new(format!("a{c}")).expect("valid id"),
        admin: false,
        privileges: Role::Agent.default_privileges(),
        bot: false,
    };
    // Every conversation opened by its end user and taken by its agent.
    for c in 0..conversations {
        let user = Actor::EndUser(EndUserId::new(format!("u{c}")).expect("valid id"));
        ownership.apply(send(&tenant, c, user, None, None)).await?;
    }
    let mut lines = Vec::new();
    let mut first = 0.0;
    for kind in [
        Kind::EndUserMessage,
        Kind::AgentMessage,
        Kind::AgentMessageWithId,
        Kind::AgentMessageConcurrent,
    ] {
        if matches!(kind, Kind::AgentMessage) {
            for c in 0..conversations {
                let taken = ownership
                    .apply(send(&tenant, c, agent(c), Some(0), None))
                    .await?;
                anyhow::ensure!(
                    matches!(taken, Decision::Done { .. }),
                    "take {c}: {taken:?}"
                );
            }
        }
        // Three INFO calls per kind, in this order (cpu before, cpu after, commandstats):
        // benches/script-instructions.sh finds each kind's callgrind dump by that count.
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec_async(&mut admin)
            .await?;
        let cpu0 = server_cpu_us(&mut admin).await?;
        let requests = (0..messages).map(|n| {
            let c = (n as usize) % conversations;
            match kind {
                Kind::EndUserMessage => {
                    // Waiting conversations only: the first pass, before the takes.
                    let user = Actor::EndUser(EndUserId::new(format!("u{c}")).expect("valid id"));
                    send(&tenant, c, user, None, None)
                }
                Kind::AgentMessage | Kind::AgentMessageConcurrent => {
                    send(&tenant, c, agent(c), Some(1), None)
                }
                Kind::AgentMessageWithId => {
                    send(&tenant, c, agent(c), Some(1), Some(format!("m{n}")))
                }
            }
        });
        let in_flight = match kind {
            Kind::AgentMessageConcurrent => IN_FLIGHT,
            _ => 1,
        };
        let decisions: Vec<_> = futures::stream::iter(requests)
            .map(|request| ownership.apply(request))
            .buffer_unordered(in_flight)
            .collect()
            .await;
        for decision in decisions {
            let decision = decision?;
            anyhow::ensure!(
                matches!(decision, Decision::Done { .. }),
                "{kind:?}: {decision:?}"
            );
        }
        let cpu = server_cpu_us(&mut admin).await? - cpu0;
        let stats = commandstats(&mut admin).await?;
        let per = |usec: u64| usec as f64 / messages as f64;
        let script = stats.get("fcall").copied().unwrap_or((0, 0));
        let mut inner: Vec<String> = stats
            .iter()
            .filter(|(name, _)| !["fcall", "config|resetstat", "info"].contains(&name.as_str()))
            .map(|(name, (calls, usec))| {
                format!(
                    "{name} {:.2} µs × {:.2}",
                    *usec as f64 / (*calls).max(1) as f64,
                    *calls as f64 / messages as f64
                )
            })
            .collect();
        inner.sort();
        let line = format!(
            "{:<36} server CPU {:>6.1} µs/command; script {:>5.1} µs ({:.1} commands per call), of which commands: {}",
            kind.name(),
            cpu / messages as f64,
            per(script.1),
            messages as f64 / script.0.max(1) as f64,
            inner.join(", ")
        );
        eprintln!("{line}");
        if lines.is_empty() {
            first = cpu / messages as f64;
        }
        lines.push(line);
    }
    let mut report = Report {
        scenario: "script-cost".into(),
        sent: messages * 4,
        redis_cpu_us_per_delivery: first,
        ok: true,
        ..Report::default()
    };
    report.notes = lines;
    drop(server);
    Ok(report)
}
