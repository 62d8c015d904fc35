//! `export`: one end user writes `--messages` messages (the data-subject request's size:
//! 10,000 by the #19 goal, under 10 s), then an admin exports everything held about them
//! (`GET /admin/v1/users/{user}/export`); the report gives the export's time and checks
//! that it holds every message.

use crate::infra::Target;
use crate::report::Report;
use crate::scenarios::Ctx;
use anyhow::{Context, Result, bail};
use chathub_domain::Role;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The #19 goal for 10,000 messages, seconds.
const GOAL_S: f64 = 10.0;

/// Runs the scenario.
pub(crate) async fn export(target: &Target, messages: u64) -> Result<Report> {
    let Some(http) = target.http_addrs.first() else {
        bail!("export needs a spawned node (its HTTP address)");
    };
    let ctx = Ctx::new(target);
    let tenant = "bench-export".to_owned();
    let user = "dsar-subject".to_owned();
    let client = ctx
        .connect(0, tenant.clone(), Role::EndUser, user.clone())
        .await?;
    eprintln!("loading {messages} messages of one end user…");
    let t0 = Instant::now();
    for n in 0..messages {
        client
            .send_text(None, &format!("message {n} of the subject"), None, None)
            .await?;
    }
    eprintln!("loaded in {:.1} s; exporting…", t0.elapsed().as_secs_f64());
    let token = ctx.token(&tenant, Role::Admin, "dpo")?;
    let asked = Instant::now();
    // HTTP/1.0: the body ends with the connection (no chunk framing to undo).
    let mut stream = tokio::net::TcpStream::connect(http).await?;
    let request = format!(
        "GET /admin/v1/users/{user}/export HTTP/1.0\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let took = asked.elapsed().as_secs_f64();
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer")?;
    let export: serde_json::Value =
        serde_json::from_slice(&response[at + 4..]).context("the export is JSON")?;
    let exported = export["conversation"]["messages"]
        .as_array()
        .map_or(0, |m| m.len() as u64);
    eprintln!(
        "export of {exported} messages ({} bytes) in {took:.2} s (goal for 10,000: ≤ {GOAL_S} s)",
        response.len() - at - 4
    );
    let mut report = Report {
        scenario: "export".into(),
        conns: 1,
        duration_s: took,
        sent: messages,
        expected: messages,
        delivered: exported,
        lost: messages.saturating_sub(exported),
        ok: exported == messages,
        ..Report::default()
    };
    report.max_us = (took * 1e6) as u64;
    Ok(report)
}
