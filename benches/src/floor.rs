//! `floor`: the fanout shape through a bare relay — a tokio-tungstenite server with the
//! gateway's socket settings and nothing else (no Redis, no auth, no protocol, no
//! history): read a frame from a sender, acknowledge it, write it to the M followers of
//! its group. Its CPU per delivery is what the client-facing socket work alone costs on
//! this machine, the floor under the gateways' figure.
//!
//! The relay runs as its own process (`chathub-bench relay-server`, spawned by the
//! scenario) so that its CPU is measured apart from the harness's.

use crate::infra::{cpu_us, source_addr};
use crate::report::{Report, histogram};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued per follower before the relay drops it (the gateway's outbox bound).
const FOLLOWER_QUEUE: usize = 256;

/// Bytes of each relayed frame: about a chathub message event in MessagePack.
const PAYLOAD_BYTES: usize = 128;

/// The gateway's socket settings (1 KiB read buffer, small write buffer).
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

type Groups = Arc<Mutex<HashMap<u32, Vec<mpsc::Sender<Bytes>>>>>;

/// Runs the relay on a free loopback port: prints `ws=URL` on stdout, then serves until
/// killed.
pub(crate) async fn serve_relay() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("relay listening ws=ws://{}", listener.local_addr()?);
    let groups: Groups = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let groups = groups.clone();
        tokio::spawn(async move {
            let _ = relay_connection(stream, groups).await;
        });
    }
}

/// One connection: the first text frame says `send G` or `follow G`.
async fn relay_connection(stream: tokio::net::TcpStream, groups: Groups) -> Result<()> {
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(socket_config())).await?;
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        bail!("no hello");
    };
    let (role, group) = hello.split_once(' ').context("hello is `ROLE GROUP`")?;
    let group: u32 = group.parse()?;
    if role == "follow" {
        let (tx, mut rx) = mpsc::channel::<Bytes>(FOLLOWER_QUEUE);
        if let Ok(mut g) = groups.lock() {
            g.entry(group).or_default().push(tx);
        }
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    ws.feed(Message::Binary(frame)).await?;
                    // Whatever else is queued goes out in the same write.
                    while let Ok(frame) = rx.try_recv() {
                        ws.feed(Message::Binary(frame)).await?;
                    }
                    ws.flush().await?;
                }
                incoming = ws.next() => if !matches!(incoming, Some(Ok(_))) { break },
            }
        }
        return Ok(());
    }
    let ack = Bytes::from_static(&[0u8; 16]);
    while let Some(Ok(message)) = ws.next().await {
        let Message::Binary(frame) = message else {
            continue;
        };
        let followers = groups
            .lock()
            .ok()
            .and_then(|g| g.get(&group).cloned())
            .unwrap_or_default();
        for follower in &followers {
            let _ = follower.try_send(frame.clone());
        }
        ws.send(Message::Binary(ack.clone())).await?;
    }
    Ok(())
}

/// The spawned relay process (killed on drop).
struct Relay {
    child: std::process::Child,
    url: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_relay() -> Result<Relay> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("relay-server")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the relay")?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ws="))
        .with_context(|| format!("no listening line from the relay: {line:?}"))?
        .to_owned();
    Ok(Relay { child, url })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, i: usize, hello: String) -> Result<Socket> {
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .parse()
        .context("relay address")?;
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source_addr(i) {
        socket.bind((ip, 0).into())?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(socket_config()),
    )
    .await?;
    ws.send(Message::Text(hello.into())).await?;
    Ok(ws)
}

/// `floor`: K groups × (1 sender + M followers) on one bare relay process; the senders
/// send R frames/s in total for T s. Lost and duplicated are checked per follower; CPU
/// per delivery is the relay's.
pub(crate) async fn floor(
    conversations: usize,
    agents: usize,
    rate: u64,
    duration: f64,
) -> Result<(Report, Histogram<u64>)> {
    let relay = spawn_relay()?;
    let pid = relay.child.id();
    let k = conversations.max(1);
    let m = agents;
    eprintln!(
        "connecting {k} senders and {} followers to the relay…",
        k * m
    );
    let mut followers = Vec::with_capacity(k * m);
    for j in 0..k * m {
        followers.push(connect(&relay.url, j, format!("follow {}", j / m.max(1))).await?);
    }
    let mut senders = Vec::with_capacity(k);
    for i in 0..k {
        senders.push(connect(&relay.url, k * m + i, format!("send {i}")).await?);
    }
    // Every hello is read before the first frame is relayed.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(histogram()));
    let receivers: Vec<_> = followers
        .into_iter()
        .map(|mut ws| {
            let stop = stop.clone();
            let hist = hist.clone();
            tokio::spawn(async move {
                let mut local = histogram();
                let mut next = 0u64;
                let (mut unique, mut duplicated) = (0u64, 0u64);
                loop {
                    let frame =
                        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                            Ok(Some(Ok(Message::Binary(b)))) => b,
                            Ok(Some(Ok(_))) => continue,
                            Ok(_) => break,
                            Err(_) if stop.load(Ordering::Relaxed) => break,
                            Err(_) => continue,
                        };
                    let (Some(sent), Some(seq)) = (read_u64(&frame, 0), read_u64(&frame, 8)) else {
                        continue;
                    };
                    if seq < next {
                        duplicated += 1;
                        continue;
                    }
                    // A skipped seq is a loss: it shows as `expected - delivered`.
                    next = seq + 1;
                    unique += 1;
                    let us = (start.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000;
                    let _ = local.record(us.max(1));
                }
                if let Ok(mut h) = hist.lock() {
                    let _ = h.add(&local);
                }
                (unique, duplicated)
            })
        })
        .collect();

    let cpu0 = cpu_us(pid);
    let sent = Arc::new(AtomicU64::new(0));
    let per_sender = rate as f64 / k as f64;
    let run = Duration::from_secs_f64(duration);
    let run_start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let sent = sent.clone();
            tokio::spawn(async move {
                if per_sender <= 0.0 {
                    return;
                }
                let period = Duration::from_secs_f64(1.0 / per_sender);
                let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / k as f64);
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let end = tokio::time::Instant::now() + run;
                let mut payload = vec![0u8; PAYLOAD_BYTES];
                for seq in 0u64.. {
                    ticks.tick().await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    payload[..8]
                        .copy_from_slice(&(start.elapsed().as_nanos() as u64).to_le_bytes());
                    payload[8..16].copy_from_slice(&seq.to_le_bytes());
                    if ws
                        .send(Message::Binary(Bytes::copy_from_slice(&payload)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    // The relay's acknowledgement, as the gateway acknowledges a send.
                    if !matches!(ws.next().await, Some(Ok(_))) {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let elapsed = run_start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu_us(pid).saturating_sub(cpu0);
    stop.store(true, Ordering::Relaxed);
    let (mut unique, mut duplicated) = (0, 0);
    for r in receivers {
        let (u, d) = r.await?;
        unique += u;
        duplicated += d;
    }
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * m as u64;
    let hist = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let mut report = Report {
        scenario: "floor".into(),
        nodes: 1,
        conns: k + k * m,
        rate,
        duration_s: elapsed,
        sent,
        delivered: unique,
        expected,
        lost: expected.saturating_sub(unique),
        duplicated,
        cpu_us_per_delivery: cpu as f64 / unique.max(1) as f64,
        winners_per_epoch_max: 1,
        ..Report::default()
    };
    report.latencies(&hist);
    report.ok = report.lost == 0 && report.duplicated == 0;
    Ok((report, hist))
}

fn read_u64(frame: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = frame.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}
