//! `export`: one end user writes `--messages` messages (the data-subject request's size:
//! 10,000 by the #19 goal, under 10 s), then an admin exports everything held about them
//! (`GET /admin/v1/users/{user}/export`); the report gives the export's time and checks
//! that it holds every message.
//!
//! `erase`: the same end user with `--messages` messages and 100 files, then the time to
//! erase them (`DELETE /admin/v1/users/{user}`; the #19 goal: 10,000 messages and 100
//! files within 60 s); the report checks the receipt counts every message and file.

use crate::infra::Target;
use crate::report::Report;
use crate::scenarios::Ctx;
use anyhow::{Context, Result, bail};
use chathub_domain::Role;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The #19 goal for 10,000 messages, seconds.
const GOAL_S: f64 = 10.0;

/// The #19 goal for erasing 10,000 messages and 100 files, seconds.
const ERASE_GOAL_S: f64 = 60.0;

/// Files the erasure scenario uploads.
const FILES: u64 = 100;

/// One HTTP/1.0 exchange (the body ends with the connection): status and body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer")?;
    let status = std::str::from_utf8(&response[..at])?
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status")?;
    Ok((status, response[at + 4..].to_vec()))
}

/// Connects `user` of `tenant` and sends `messages` messages; returns the connection.
async fn load(
    ctx: &Ctx,
    tenant: &str,
    user: &str,
    messages: u64,
) -> Result<chathub_client::Client> {
    let client = ctx
        .connect(0, tenant.to_owned(), Role::EndUser, user.to_owned())
        .await?;
    eprintln!("loading {messages} messages of one end user…");
    let t0 = Instant::now();
    for n in 0..messages {
        client
            .send_text(None, &format!("message {n} of the subject"), None, None)
            .await?;
    }
    eprintln!("loaded in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(client)
}

/// The report of a one-request scenario that took `took` s and found `found` of the
/// `expected` records (`sent` written).
fn one_request(
    scenario: &str,
    took: f64,
    sent: u64,
    expected: u64,
    found: u64,
    ok: bool,
) -> Report {
    let mut report = Report {
        scenario: scenario.into(),
        conns: 1,
        duration_s: took,
        sent,
        expected,
        delivered: found,
        lost: expected.saturating_sub(found),
        ok,
        ..Report::default()
    };
    report.max_us = (took * 1e6) as u64;
    report
}

/// Runs the erasure scenario.
pub(crate) async fn erase(target: &Target, messages: u64) -> Result<Report> {
    use chathub_protocol::{Op, Reply};
    let Some(addr) = target.http_addrs.first() else {
        bail!("erase needs a spawned node (its HTTP address)");
    };
    let ctx = Ctx::new(target);
    let tenant = "bench-erase".to_owned();
    let user = "erasure-subject".to_owned();
    let client = load(&ctx, &tenant, &user, messages).await?;
    eprintln!("uploading {FILES} files…");
    let t0 = Instant::now();
    let pdf = chathub_testkit::fixtures::pdf(30_000);
    for n in 0..FILES {
        let id = format!("file-{n}");
        let reply = client
            .request(Op::AttachmentUpload {
                conversation: None,
                name: format!("statement-{n}.pdf"),
                size: pdf.len() as u64,
                content_type: None,
                client_msg_id: Some(id.clone()),
            })
            .await?;
        let Reply::AttachmentUpload(up) = reply else {
            bail!("attachment_upload: {reply:?}");
        };
        let url = up
            .upload_url
            .context("an upload URL (the scenario uploads through the node)")?;
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .context("an upload path")?;
        let (status, body) = http(addr, "PUT", &path, None, &pdf).await?;
        if status != 201 {
            bail!("upload: {status} {}", String::from_utf8_lossy(&body));
        }
        let card: serde_json::Value = serde_json::from_slice(&body)?;
        let attachment = card["stored"]["id"]
            .as_str()
            .context("the stored file's id")?;
        client
            .request(Op::Send {
                conversation: None,
                client_msg_id: Some(id),
                text: String::new(),
                canned: None,
                engagement: None,
                attachment: Some(chathub_domain::AttachmentId::new(attachment)?),
                epoch: None,
                visibility: Default::default(),
                handover_note: None,
            })
            .await?;
    }
    eprintln!("loaded in {:.1} s; erasing…", t0.elapsed().as_secs_f64());
    let token = ctx.token(&tenant, Role::Admin, "dpo")?;
    let asked = Instant::now();
    let (status, body) = http(
        addr,
        "DELETE",
        &format!("/admin/v1/users/{user}"),
        Some(&token),
        b"",
    )
    .await?;
    let took = asked.elapsed().as_secs_f64();
    if status != 200 {
        bail!("erase: {status} {}", String::from_utf8_lossy(&body));
    }
    let receipt: serde_json::Value = serde_json::from_slice(&body)?;
    let c = &receipt["conversation"];
    let events = c["history_events"]
        .as_u64()
        .unwrap_or(0)
        .max(c["archived_events"].as_u64().unwrap_or(0));
    let files = receipt["attachments"]["attachments"].as_u64().unwrap_or(0);
    // Every message and file, plus the `opened` status event.
    let expected = messages + FILES + 1;
    eprintln!(
        "erased {events} events and {files} files in {took:.2} s (goal for 10,000 messages and 100 files: ≤ {ERASE_GOAL_S} s)"
    );
    Ok(one_request(
        "erase",
        took,
        messages + FILES,
        expected,
        events,
        events >= expected && files == FILES,
    ))
}

/// Runs the scenario.
pub(crate) async fn export(target: &Target, messages: u64) -> Result<Report> {
    let Some(http) = target.http_addrs.first() else {
        bail!("export needs a spawned node (its HTTP address)");
    };
    let ctx = Ctx::new(target);
    let tenant = "bench-export".to_owned();
    let user = "dsar-subject".to_owned();
    let client = load(&ctx, &tenant, &user, messages).await?;
    drop(client);
    eprintln!("exporting…");
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
    Ok(one_request(
        "export",
        took,
        messages,
        messages,
        exported,
        exported == messages,
    ))
}
