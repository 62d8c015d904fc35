//! The scenarios. Every loop is bounded in count and time; all traffic is on loopback.

use crate::infra::{Target, source_addr};
use crate::report::{Report, histogram};
use anyhow::{Context, Result, bail};
use chathub_client::{Client, ClientOptions};
use chathub_domain::{ConversationId, EventBody, MessageContent, Role};
use chathub_gateway::{AuthConfig, Authenticator};
use chathub_protocol::ServerFrame;
use hdrhistogram::Histogram;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shape of a run.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Conversations.
    pub(crate) conversations: usize,
    /// Agents per conversation.
    pub(crate) agents: usize,
    /// Messages in per second, all end users together.
    pub(crate) rate: u64,
    /// Seconds of load.
    pub(crate) duration: f64,
    /// Connections (`idle`).
    pub(crate) conns: usize,
}

pub(crate) struct Ctx {
    urls: Vec<String>,
    auth: Authenticator,
    next_conn: AtomicUsize,
}

impl Ctx {
    /// A token of `tenant` for `subject`, signed with the target's secret.
    pub(crate) fn token(&self, tenant: &str, role: Role, subject: &str) -> Result<String> {
        Ok(self.auth.mint(tenant, subject, role, None, 24 * 3600)?)
    }

    pub(crate) fn new(target: &Target) -> Self {
        Ctx {
            urls: target.urls.clone(),
            auth: Authenticator::new(&AuthConfig {
                secret: target.secret.clone(),
                ..AuthConfig::default()
            }),
            next_conn: AtomicUsize::new(0),
        }
    }

    pub(crate) async fn connect(
        &self,
        node: usize,
        tenant: String,
        role: Role,
        subject: String,
    ) -> Result<Client> {
        let token = self.auth.mint(&tenant, &subject, role, None, 24 * 3600)?;
        let i = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let options = ClientOptions {
            local_addr: source_addr(i),
            event_buffer: 4096,
            request_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        };
        let url = &self.urls[node % self.urls.len()];
        tokio::time::timeout(
            Duration::from_secs(10),
            Client::connect_with(url, &token, options),
        )
        .await
        .with_context(|| format!("connecting {subject} to {url}: timed out"))?
        .with_context(|| format!("connecting {subject} to {url}"))
    }
}

/// Runs `jobs` with at most `limit` in flight.
pub(crate) async fn bounded<T, F>(jobs: Vec<F>, limit: usize) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    use futures::StreamExt;
    futures::stream::iter(jobs).buffered(limit).collect().await
}

fn now_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// What one receiving client saw.
#[derive(Default)]
struct Seen {
    unique: u64,
    duplicated: u64,
}

/// Reads events until `stop`, recording latencies of end-user messages (their text is the
/// send time in ns since `start`) and counting unique and duplicate `seq`s.
async fn receive(
    mut client: Client,
    start: Instant,
    stop: Arc<AtomicBool>,
    hist: Arc<Mutex<Histogram<u64>>>,
) -> (Seen, Client) {
    let mut seen = Seen::default();
    let mut seqs: HashSet<(ConversationId, u64)> = HashSet::new();
    let mut local = histogram();
    loop {
        let Some(frame) = client.next_event_within(Duration::from_millis(200)).await else {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            continue;
        };
        if let ServerFrame::Event(e) = frame
            && let EventBody::Message {
                author,
                content: MessageContent::Text { text },
                ..
            } = &e.event.body
            && author.role == Role::EndUser
        {
            // Only measured messages carry their send time; the warm-up does not count.
            let Ok(sent) = text.parse::<u64>() else {
                continue;
            };
            if seqs.insert((e.conversation.clone(), e.event.seq)) {
                seen.unique += 1;
                let us = now_ns(start).saturating_sub(sent) / 1000;
                let _ = local.record(us.max(1));
            } else {
                seen.duplicated += 1;
            }
        }
    }
    if let Ok(mut h) = hist.lock() {
        let _ = h.add(&local);
    }
    (seen, client)
}

/// `fanout`: K conversations (a tenant each), one end user on node 1 and M agents on node
/// 2 following it; the end users send at R msg/s in total for T s.
pub(crate) async fn fanout(target: &Target, shape: &Shape) -> Result<Report> {
    Ok(fanout_with_histogram(target, shape).await?.0)
}

/// [`fanout`], also returning the latency histogram.
pub(crate) async fn fanout_with_histogram(
    target: &Target,
    shape: &Shape,
) -> Result<(Report, Histogram<u64>)> {
    let ctx = Ctx::new(target);
    let k = shape.conversations.max(1);
    let m = shape.agents;
    eprintln!("connecting {} end users and {} agents…", k, k * m);
    let t0 = Instant::now();
    let users = bounded(
        (0..k)
            .map(|i| ctx.connect(0, format!("bench-{i}"), Role::EndUser, format!("u{i}")))
            .collect(),
        256,
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let agents = bounded(
        (0..k * m)
            .map(|j| {
                let ctx = &ctx;
                async move {
                    let i = j / m.max(1);
                    let c = ctx
                        .connect(1, format!("bench-{i}"), Role::Agent, format!("a{j}"))
                        .await?;
                    c.subscribe(Some(&ConversationId::new(format!("u{i}"))?), None)
                        .await?;
                    Ok::<_, anyhow::Error>(c)
                }
            })
            .collect(),
        256,
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let connect_rate = (k + k * m) as f64 / t0.elapsed().as_secs_f64();
    // Open every conversation (its queue frames settle before measuring).
    for u in &users {
        u.send_text(None, "warm-up", None, None).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(histogram()));
    let receivers: Vec<_> = agents
        .into_iter()
        .map(|a| tokio::spawn(receive(a, start, stop.clone(), hist.clone())))
        .collect();
    // Let the receivers drain the warm-up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let cpu0 = target.gateway_cpu_us();
    let redis0 = target.redis_cpu_us();
    let redis0_each = target.redis_cpu_us_each();
    let commands0 = target.redis_commandstats().await;
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let per_user = shape.rate as f64 / k as f64;
    let duration = Duration::from_secs_f64(shape.duration);
    let run_start = Instant::now();
    let senders: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, user)| {
            let sent = sent.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                if per_user <= 0.0 {
                    return user;
                }
                let period = Duration::from_secs_f64(1.0 / per_user);
                // Spread the users' phases over one period.
                let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / k as f64);
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let end = tokio::time::Instant::now() + duration;
                loop {
                    ticks.tick().await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    let text = now_ns(start).to_string();
                    match user.send_text(None, &text, None, None).await {
                        Ok(_) => sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
                user
            })
        })
        .collect();
    // Progress line while it runs.
    let progress = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sent.load(Ordering::Relaxed);
                eprintln!("  sent {now} ({} msg/s)", now - last);
                last = now;
            }
        })
    };
    let mut users = Vec::new();
    for s in senders {
        users.push(s.await?);
    }
    let elapsed = run_start.elapsed().as_secs_f64();
    progress.abort();
    // Drain: give deliveries in flight time to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = target.gateway_cpu_us().saturating_sub(cpu0);
    let redis_cpu = target.redis_cpu_us().saturating_sub(redis0);
    let redis_each: Vec<u64> = target
        .redis_cpu_us_each()
        .iter()
        .zip(&redis0_each)
        .map(|(now, before)| now.saturating_sub(*before))
        .collect();
    let commands = target.redis_commandstats().await;
    stop.store(true, Ordering::Relaxed);
    let mut unique = 0;
    let mut duplicated = 0;
    for r in receivers {
        let (seen, _client) = r.await?;
        unique += seen.unique;
        duplicated += seen.duplicated;
    }
    drop(users);
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * m as u64;
    let hist = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let mut report = Report {
        scenario: "fanout".into(),
        nodes: target.urls.len(),
        conns: k + k * m,
        rate: shape.rate,
        duration_s: elapsed,
        sent,
        delivered: unique,
        expected,
        lost: expected.saturating_sub(unique),
        duplicated,
        cpu_us_per_delivery: cpu as f64 / unique.max(1) as f64,
        redis_cpu_us_per_delivery: redis_cpu as f64 / unique.max(1) as f64,
        redis_cpu_us_per_delivery_by_master: redis_each
            .iter()
            .map(|c| *c as f64 / unique.max(1) as f64)
            .collect(),
        connect_rate,
        winners_per_epoch_max: 1,
        ..Report::default()
    };
    report.latencies(&hist);
    report.redis_cpu_us_per_message = redis_cpu as f64 / sent.max(1) as f64;
    report.notes = crate::script_cost::per_message_split(&commands0, &commands, sent);
    let archive = target
        .histogram_buckets("chathub_archive_delay_seconds")
        .await;
    if let Some(p99) = crate::infra::bucket_quantile(&archive, 0.99) {
        report.archive_lag_p99_ms = p99 * 1000.0;
    }
    if let Some(size) = target.archive_size().await
        && size.events > 0
    {
        let per = |bytes: u64| bytes as f64 / size.events as f64;
        report.archive_events = size.events;
        report.archive_bytes_per_event =
            per(size.table_bytes + size.toast_bytes + size.index_bytes);
        report.archive_index_bytes_per_event = per(size.index_bytes);
    }
    report.ok = report.lost == 0 && report.duplicated == 0 && errors.load(Ordering::Relaxed) == 0;
    Ok((report, hist))
}

/// `idle`: N authenticated sockets held on node 1; gateway RSS per connection.
pub(crate) async fn idle(target: &Target, shape: &Shape) -> Result<Report> {
    let ctx = Ctx::new(target);
    let n = shape.conns.max(1);
    let rss0 = target.gateway_rss_kib();
    eprintln!("connecting {n} idle sockets (gateway RSS before: {rss0} KiB)…");
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let batch = 500;
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
        let clients = bounded(
            chunk
                .iter()
                .map(|i| {
                    ctx.connect(
                        0,
                        "bench-idle".to_owned(),
                        Role::EndUser,
                        format!("idle{i}"),
                    )
                })
                .collect(),
            256,
        )
        .await;
        for c in clients {
            held.push(c?);
        }
        if held.len() % 10_000 < batch {
            eprintln!("  {} connected", held.len());
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(shape.duration.max(2.0))).await;
    let rss1 = target.gateway_rss_kib();
    let alive = held.len();
    let report = Report {
        scenario: "idle".into(),
        nodes: target.urls.len(),
        conns: alive,
        duration_s: connect_secs,
        rss_kib_per_conn: rss1.saturating_sub(rss0) as f64 / alive.max(1) as f64,
        connect_rate: alive as f64 / connect_secs,
        winners_per_epoch_max: 1,
        ok: alive == n,
        ..Report::default()
    };
    drop(held);
    Ok(report)
}

/// `take-race`: C conversations, A agents each spread over the nodes, all sending the
/// first message at once; exactly one winner per conversation, decision latency.
pub(crate) async fn take_race(target: &Target, shape: &Shape) -> Result<Report> {
    let ctx = Ctx::new(target);
    let c = shape.conversations.max(1);
    let a = shape.agents.max(2);
    let nodes = target.urls.len();
    for i in 0..c {
        let u = ctx
            .connect(0, "bench-race".to_owned(), Role::EndUser, format!("r{i}"))
            .await?;
        u.send_text(None, "help", None, None).await?;
    }
    let agents = bounded(
        (0..a)
            .map(|j| {
                ctx.connect(
                    j % nodes,
                    "bench-race".to_owned(),
                    Role::Agent,
                    format!("ra{j}"),
                )
            })
            .collect(),
        256,
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let agents: Vec<Arc<Client>> = agents.into_iter().map(Arc::new).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(a));
    let start = Instant::now();
    let tasks: Vec<_> = agents
        .iter()
        .cloned()
        .map(|agent| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let sends = (0..c).map(|i| {
                    let agent = agent.clone();
                    async move {
                        let conversation = ConversationId::new(format!("r{i}")).ok()?;
                        let t = Instant::now();
                        let result = agent
                            .send_text(Some(&conversation), "mine", Some(0), None)
                            .await;
                        Some((i, result.is_ok(), t.elapsed()))
                    }
                });
                futures::future::join_all(sends).await
            })
        })
        .collect();
    let mut winners = vec![0u64; c];
    let mut hist = histogram();
    let mut attempts = 0;
    for t in tasks {
        for (i, won, took) in t.await?.into_iter().flatten() {
            attempts += 1;
            if won {
                winners[i] += 1;
            }
            let _ = hist.record((took.as_micros() as u64).max(1));
        }
    }
    let max = winners.iter().copied().max().unwrap_or(0);
    let mut report = Report {
        scenario: "take-race".into(),
        nodes,
        conns: a + c,
        duration_s: start.elapsed().as_secs_f64(),
        sent: attempts,
        winners_per_epoch_max: max,
        ok: winners.iter().all(|w| *w == 1),
        ..Report::default()
    };
    report.latencies(&hist);
    Ok(report)
}

/// `resume`: K conversations with their end user sending at R msg/s in total; M agents
/// each follow one, disconnecting and resuming from their last `seq` in waves. Lost and
/// duplicated must be 0; resume latency is connect + subscribe-with-replay.
pub(crate) async fn resume(target: &Target, shape: &Shape) -> Result<Report> {
    let ctx = Arc::new(Ctx::new(target));
    let k = shape.conversations.max(1);
    let m = shape.agents.max(1);
    let nodes = target.urls.len();
    let users = bounded(
        (0..k)
            .map(|i| ctx.connect(0, "bench-resume".to_owned(), Role::EndUser, format!("s{i}")))
            .collect(),
        256,
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    for u in &users {
        u.send_text(None, "0", None, None).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let resumes = Arc::new(Mutex::new(histogram()));
    let duration = Duration::from_secs_f64(shape.duration);
    // Followers: reconnect every ~1–2 s to another node, resuming from the last seq.
    let followers: Vec<_> = (0..k * m)
        .map(|j| {
            let ctx = ctx.clone();
            let stop = stop.clone();
            let resumes = resumes.clone();
            let target_urls = nodes;
            tokio::spawn(async move {
                let conversation = ConversationId::new(format!("s{}", j / m)).ok()?;
                let mut seqs: Vec<u64> = Vec::new();
                let mut wave = 0usize;
                while !stop.load(Ordering::Relaxed) && wave < 1_000 {
                    let t = Instant::now();
                    let node = (j + wave) % target_urls;
                    let mut client = ctx
                        .connect(
                            node,
                            "bench-resume".to_owned(),
                            Role::Agent,
                            format!("f{j}"),
                        )
                        .await
                        .ok()?;
                    let since = seqs.last().copied().unwrap_or(0);
                    client
                        .subscribe(Some(&conversation), Some(since))
                        .await
                        .ok()?;
                    if wave > 0
                        && let Ok(mut h) = resumes.lock()
                    {
                        let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                    }
                    let stay =
                        Duration::from_millis(1000 + (j as u64 * 37 + wave as u64 * 101) % 1000);
                    let until = tokio::time::Instant::now() + stay;
                    while tokio::time::Instant::now() < until {
                        if let Some(ServerFrame::Event(e)) =
                            client.next_event_within(Duration::from_millis(50)).await
                        {
                            seqs.push(e.event.seq);
                        }
                    }
                    client.close().await;
                    wave += 1;
                }
                // Final catch-up: one last resume after the senders stopped.
                let mut client = ctx
                    .connect(0, "bench-resume".to_owned(), Role::Agent, format!("f{j}"))
                    .await
                    .ok()?;
                client
                    .subscribe(Some(&conversation), Some(seqs.last().copied().unwrap_or(0)))
                    .await
                    .ok()?;
                while let Some(frame) = client.next_event_within(Duration::from_millis(500)).await {
                    if let ServerFrame::Event(e) = frame {
                        seqs.push(e.event.seq);
                    }
                }
                Some((j / m, seqs, wave))
            })
        })
        .collect();
    let sent = Arc::new(AtomicU64::new(0));
    let per_user = shape.rate as f64 / k as f64;
    let start = Instant::now();
    let senders: Vec<_> = users
        .into_iter()
        .map(|user| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let period = Duration::from_secs_f64(1.0 / per_user.max(0.1));
                let mut ticks = tokio::time::interval(period);
                let end = tokio::time::Instant::now() + duration;
                while tokio::time::Instant::now() < end {
                    ticks.tick().await;
                    if user.send_text(None, "m", None, None).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                user
            })
        })
        .collect();
    let mut users = Vec::new();
    for s in senders {
        users.push(s.await?);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let mut lost = 0;
    let mut duplicated = 0;
    let mut delivered = 0;
    let mut expected = 0;
    let mut waves = 0;
    for f in followers {
        let Some((_, seqs, w)) = f.await? else {
            bail!("a follower failed to connect");
        };
        waves += w;
        // Every follower must have seen 1..=last exactly once: the conversation's whole
        // history (status event, the warm-up, every message).
        let last = seqs.iter().copied().max().unwrap_or(0);
        let unique: HashSet<u64> = seqs.iter().copied().collect();
        expected += last;
        delivered += unique.len() as u64;
        lost += last - unique.len() as u64;
        duplicated += (seqs.len() - unique.len()) as u64;
    }
    drop(users);
    let hist = resumes
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let mut report = Report {
        scenario: "resume".into(),
        nodes,
        conns: k + k * m,
        rate: shape.rate,
        duration_s: elapsed,
        sent: sent.load(Ordering::Relaxed),
        delivered,
        expected,
        lost,
        duplicated,
        winners_per_epoch_max: 1,
        ..Report::default()
    };
    report.latencies(&hist);
    report.ok = lost == 0 && duplicated == 0 && waves > 0;
    eprintln!("  {waves} reconnects");
    Ok(report)
}

/// `ramp`: `fanout` steps of T s at rising rates (×1.25 each) until p99 passes 10 ms or
/// anything is lost; the knee is the highest clean rate.
pub(crate) async fn ramp(target: &Target, shape: &Shape) -> Result<Report> {
    let mut rate = shape.rate.max(100);
    let mut knee = 0;
    let mut last = None;
    for step in 0..20 {
        eprintln!("ramp step {step}: {rate} msg/s");
        let report = fanout(
            target,
            &Shape {
                rate,
                ..shape.clone()
            },
        )
        .await?;
        eprintln!("  p99 {} µs, lost {}", report.p99_us, report.lost);
        let clean = report.ok && report.p99_us <= 10_000;
        if !clean {
            last = Some(report);
            break;
        }
        knee = rate;
        last = Some(report);
        rate = rate * 5 / 4;
    }
    let mut report = last.context("no ramp step ran")?;
    report.scenario = "ramp".into();
    report.knee_rate = knee;
    report.ok = knee > 0;
    Ok(report)
}
