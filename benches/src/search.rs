//! `search`: loads `--messages` messages into one tenant through the socket (end users
//! writing texts drawn from a vocabulary of common and rare words), then an agent runs
//! `--searches` searches of a mix of shapes and the report gives their latency.

use crate::infra::Target;
use crate::report::{Report, histogram};
use crate::scenarios::{Ctx, bounded};
use anyhow::{Result, bail};
use chathub_domain::Role;
use chathub_protocol::{Op, Reply};
use std::time::Instant;

/// Words every message may carry: common ones match many messages.
const COMMON: [&str; 8] = [
    "order", "coupon", "delivery", "refund", "account", "points", "parcel", "thanks",
];

/// The words of message `n`: two common ones, a mid-frequency one (`m0`…`m999`) and a
/// rare one (`r0`…`r99999`).
fn words_of(n: u64) -> (&'static str, &'static str, String, String) {
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (
        COMMON[(mix % 8) as usize],
        COMMON[((mix >> 8) % 8) as usize],
        format!("m{}", (mix >> 16) % 1000),
        format!("r{}", (mix >> 32) % 100_000),
    )
}

/// Message `n`'s text.
fn text(n: u64) -> String {
    let (a, b, mid, rare) = words_of(n);
    format!("my {a} is late, the {b} ticket {mid} {rare}")
}

/// Search `i` of the mix, built from the words of a loaded message so that every one
/// has hits: (query, end user filter).
fn query(i: u64, messages: u64, conversations: usize, per_user: u64) -> (String, Option<String>) {
    let n = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % messages.max(1);
    let (a, _, mid, rare) = words_of(n);
    match i % 5 {
        0 => (a.to_owned(), None),
        1 => (rare, None),
        2 => (format!("{a} {mid}"), None),
        3 => ("\"is late\" -refund".to_owned(), None),
        _ => {
            let user = (n / per_user.max(1)) as usize % conversations;
            (a.to_owned(), Some(format!("s{user}")))
        }
    }
}

/// Runs the scenario: `messages` over `conversations` end users, then `searches`.
pub(crate) async fn search(
    target: &Target,
    conversations: usize,
    messages: u64,
    searches: u64,
) -> Result<Report> {
    let ctx = Ctx::new(target);
    let conversations = conversations.max(1);
    let tenant = "bench-search".to_owned();
    eprintln!("loading {messages} messages over {conversations} conversations…");
    let t0 = Instant::now();
    let users = bounded(
        (0..conversations)
            .map(|i| ctx.connect(0, tenant.clone(), Role::EndUser, format!("s{i}")))
            .collect(),
        128,
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let per_user = messages.div_ceil(conversations as u64);
    let loads = users
        .into_iter()
        .enumerate()
        .map(|(i, user)| async move {
            let mut sent = 0u64;
            for k in 0..per_user {
                let n = i as u64 * per_user + k;
                if n >= messages {
                    break;
                }
                user.send_text(None, &text(n), None, None).await?;
                sent += 1;
            }
            anyhow::Ok(sent)
        })
        .collect();
    let mut loaded = 0;
    for sent in bounded(loads, conversations).await {
        loaded += sent?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "loaded {loaded} messages in {load_s:.1} s ({:.0} msg/s); searching…",
        loaded as f64 / load_s
    );
    let agent = ctx
        .connect(0, tenant, Role::Agent, "searcher".to_owned())
        .await?;
    let mut hist = histogram();
    let mut empty = 0u64;
    let mut failed = 0u64;
    let t1 = Instant::now();
    for i in 0..searches {
        let (query, end_user) = query(i, loaded, conversations, per_user);
        let op = Op::Search {
            query,
            end_user,
            agent: None,
            status: None,
            from: None,
            to: None,
            kind: None,
            cursor: None,
            limit: Some(20),
        };
        let asked = Instant::now();
        match agent.request(op).await {
            Ok(Reply::Search(page)) => {
                let _ = hist.record((asked.elapsed().as_micros() as u64).max(1));
                if page.hits.is_empty() {
                    empty += 1;
                }
            }
            _ => failed += 1,
        }
    }
    if searches > 0 && hist.is_empty() {
        bail!("no search answered");
    }
    let mut report = Report {
        scenario: "search".into(),
        conns: conversations + 1,
        duration_s: t1.elapsed().as_secs_f64(),
        sent: loaded,
        expected: searches,
        delivered: searches - failed,
        lost: failed,
        // Every query of the mix matches loaded messages: an empty answer is wrong.
        ok: failed == 0 && empty == 0,
        ..Report::default()
    };
    report.latencies(&hist);
    report.p95_us = hist.value_at_quantile(0.95);
    eprintln!("{empty} searches found nothing, {failed} failed");
    Ok(report)
}
