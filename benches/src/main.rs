//! `chathub-bench`: drives chathub gateway nodes over real sockets (MessagePack
//! subprotocol) like agents and end users do, and reports latency, loss, CPU and memory.
//! The last line of stdout is one JSON object; the exit code is non-zero when anything
//! was lost or duplicated or a race had more than one winner.
//!
//! `--spawn` starts a redis-server on a free loopback port and `--nodes` gateway
//! processes (`chathub serve --redis`), and stops them at the end; `--connect` uses
//! running nodes (`--gateway-pids` for their CPU and memory figures).

mod export;
mod floor;
mod infra;
mod report;
mod scenarios;
mod script_cost;
mod search;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use infra::Target;
use scenarios::Shape;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// K conversations × (1 end user + M agents); end users send at R msg/s.
    Fanout,
    /// N idle authenticated sockets on one node: RSS per connection, connect rate.
    Idle,
    /// A agents race to take each of C conversations: exactly one winner each.
    TakeRace,
    /// Followers disconnect and resume in waves while messages flow: 0 lost, 0 duplicated.
    Resume,
    /// Fanout at rising rates until p99 > 10 ms or a loss: the knee.
    Ramp,
    /// The fanout shape through a bare tokio-tungstenite relay (no Redis, no logic): what
    /// the client-facing socket work alone costs here, the floor under `fanout`.
    Floor,
    /// Loads `--messages` messages into one tenant, then runs `--searches` searches of a
    /// mix of shapes (common word, rare word, two words, phrase with exclusion, one end
    /// user): their latency (p50, p95, p99).
    Search,
    /// What Redis itself spends per command (`INFO commandstats` and its CPU): `--messages`
    /// end users' messages, agents' messages, agents' messages with a `client_msg_id`,
    /// over `--conversations`, through the ownership script on a spawned redis-server.
    ScriptCost,
    /// One end user's `--messages` messages (default 1,000,000: give 10000), then the
    /// time to export everything held about them (the data-subject request).
    Export,
    /// One end user's `--messages` messages (give 10000) and 100 files, then the time to
    /// erase them from every store.
    Erase,
    /// The relay process of `floor` (started by it).
    #[value(hide = true)]
    RelayServer,
}

/// Load-testing harness for chathub.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Start redis-server and the gateway nodes here, and stop them at the end.
    #[arg(long, conflicts_with = "connect")]
    spawn: bool,
    /// Running nodes: WebSocket URLs, comma separated.
    #[arg(long, value_delimiter = ',')]
    connect: Option<Vec<String>>,
    /// With --connect: PIDs of the gateway processes, for CPU and RSS.
    #[arg(long, value_delimiter = ',')]
    gateway_pids: Vec<u32>,
    /// With --connect: the token secret of the running nodes.
    #[arg(long, default_value = chathub_gateway::DEV_SECRET)]
    secret: String,
    /// With --spawn: gateway nodes.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// With --spawn and --nodes 1: the embedded backend instead of Redis (with a data
    /// directory, as `chathub serve` runs by default).
    #[arg(long)]
    embedded: bool,
    /// With --embedded: keep nothing on disk (`chathub serve --ephemeral`).
    #[arg(long, requires = "embedded")]
    ephemeral: bool,
    /// With --spawn: a Redis Cluster of this many masters (at least 3) instead of one
    /// redis-server; the nodes use sharded pub/sub, and the report shows the Redis CPU
    /// of each master.
    #[arg(long, default_value_t = 0)]
    redis_cluster_masters: usize,
    /// With --spawn (cluster mode): start a PostgreSQL archive too; `fanout` then
    /// reports the archive lag (from each step to its copy committed), p99.
    #[arg(long)]
    archive: bool,
    /// With --spawn: the chathub binary (default: next to this one).
    #[arg(long)]
    chathub_bin: Option<PathBuf>,
    /// Conversations.
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Agents per conversation (take-race: agents in total).
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// Messages in per second, all end users together.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// `search`: messages to load first.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// `search`: searches to run.
    #[arg(long, default_value_t = 500)]
    searches: u64,
    /// Connections (idle).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// fanout / ramp: write the latency distribution as an SVG plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let fds = infra::raise_fd_limit();
    if args.conns * 2 + 1000 > fds as usize && matches!(args.scenario, Scenario::Idle) {
        eprintln!(
            "warning: open-file limit {fds} is low for {} connections",
            args.conns
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&args))?;
    report.print();
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args) -> Result<report::Report> {
    match args.scenario {
        Scenario::RelayServer => {
            floor::serve_relay().await?;
            bail!("the relay stopped");
        }
        Scenario::Floor => {
            let (report, hist) = floor::floor(
                args.conversations,
                args.agents,
                args.rate,
                args.duration.clamp(0.5, 3600.0),
            )
            .await?;
            if let Some(path) = &args.svg {
                let title = format!(
                    "bare relay floor: {} groups x {} followers, {} msg/s in",
                    args.conversations, args.agents, args.rate
                );
                report::write_svg(&hist, path, &title)?;
            }
            return Ok(report);
        }
        Scenario::ScriptCost => {
            return script_cost::script_cost(args.conversations, args.messages.min(1_000_000))
                .await;
        }
        _ => {}
    }
    let target = match (&args.connect, args.spawn) {
        (Some(urls), _) => {
            Target::connect(urls.clone(), args.gateway_pids.clone(), args.secret.clone())
        }
        (None, true) => {
            let bin = infra::chathub_bin(args.chathub_bin.clone())?;
            let extra: Vec<String> = if args.ephemeral {
                vec!["--ephemeral".into()]
            } else {
                Vec::new()
            };
            // Idle sockets must outlive the keepalive only for the run's length; give
            // nodes room for every socket.
            Target::spawn(
                args.nodes.max(1),
                args.embedded,
                args.redis_cluster_masters,
                args.archive,
                bin,
                &extra,
            )?
        }
        (None, false) => bail!("give --spawn or --connect URL[,URL…]"),
    };
    let shape = Shape {
        conversations: args.conversations,
        agents: args.agents,
        rate: args.rate,
        duration: args.duration.clamp(0.5, 3600.0),
        conns: args.conns,
    };
    let mut report = match args.scenario {
        Scenario::Fanout => {
            let (report, hist) = scenarios::fanout_with_histogram(&target, &shape).await?;
            if let Some(path) = &args.svg {
                let title = format!(
                    "chathub fanout: {} conversations x {} agents, {} msg/s in, {} nodes",
                    shape.conversations,
                    shape.agents,
                    shape.rate,
                    target.urls.len()
                );
                report::write_svg(&hist, path, &title)?;
            }
            report
        }
        Scenario::Idle => scenarios::idle(&target, &shape).await?,
        Scenario::TakeRace => scenarios::take_race(&target, &shape).await?,
        Scenario::Resume => scenarios::resume(&target, &shape).await?,
        Scenario::Ramp => scenarios::ramp(&target, &shape).await?,
        Scenario::Export => export::export(&target, args.messages).await?,
        Scenario::Erase => export::erase(&target, args.messages).await?,
        Scenario::Search => {
            search::search(&target, args.conversations, args.messages, args.searches).await?
        }
        Scenario::Floor | Scenario::RelayServer | Scenario::ScriptCost => {
            unreachable!("handled above")
        }
    };
    report.nodes = target.urls.len();
    Ok(report)
}
