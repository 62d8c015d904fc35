//! The attachment scanner hook (`--attachment-scanner`): every stored file is POSTed to
//! the brand's scanner, and stays `pending` (only its sender may open it) until the
//! scanner answers. The verdict becomes an `attachment_checked` event of the
//! conversation (with its `seq`: every device, resumes included, sees the same state)
//! and the file's record; `blocked` files are never served.
//!
//! Request (JSON): `{"tenant", "conversation", "attachment", "name", "content_type",
//! "size", "sha256", "url"}` where `url` downloads the file (valid 15 minutes), with
//! `X-Chathub-Signature: sha256=<hex HMAC-SHA256 of the body>` and
//! `X-Chathub-Attachment: <id>`. Answer: `200` with `{"verdict": "clean"}` or
//! `{"verdict": "blocked"}`; anything else is retried.
//!
//! A scan owed is a durable mark in the object store, left before the file's record
//! exists and removed only once the verdict is on the record and told to the
//! conversation: the node that stored the file scans it at once; if it dies (or the
//! scanner is down), any node's sweep takes the mark up after `retry_after`. At least
//! once: the scanner may see a file twice, and a verdict event may appear twice (the
//! same verdict).

use crate::auth::Identity;
use crate::config::ScannerConfig;
use crate::ops::Ctx;
use crate::{Backend, Node};
use bytes::Bytes;
use chathub_attachments::{Stored, Variant};
use chathub_domain::{
    Actor, AttachmentId, AttachmentStatus, Command, ConversationId, Participant, Privileges, Role,
    TenantId,
};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Scans waiting on one node; more wait for a sweep.
const QUEUE: usize = 1000;
/// Scans in flight at once on one node.
const CONCURRENCY: usize = 4;
/// Largest scanner answer read, in bytes.
const MAX_ANSWER: usize = 16 * 1024;
/// How often a node sweeps for scans left undone.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One attachment to scan.
type Target = (TenantId, ConversationId, AttachmentId);

/// The queue into a node's scan worker.
pub(crate) struct Scanner {
    tx: mpsc::Sender<Target>,
    /// Queued or in flight here: never twice at once.
    queued: Mutex<HashSet<AttachmentId>>,
}

impl Scanner {
    /// A scanner and the receiving end for [`run`].
    pub(crate) fn new() -> (Scanner, mpsc::Receiver<Target>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let scanner = Scanner {
            tx,
            queued: Mutex::default(),
        };
        (scanner, rx)
    }

    /// Queues a scan unless it is queued already; when the queue is full it waits for a
    /// sweep (its mark stays).
    pub(crate) fn enqueue(&self, target: Target) {
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        if queued.contains(&target.2) {
            return;
        }
        let id = target.2.clone();
        if self.tx.try_send(target).is_ok() {
            queued.insert(id);
        }
    }

    fn done(&self, id: &AttachmentId) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The scan worker: up to [`CONCURRENCY`] scans at once, until the node stops.
pub(crate) async fn run<K: Backend>(node: Arc<Node<K>>, mut rx: mpsc::Receiver<Target>) {
    let Some(config) = node.config.attachment_scanner.clone() else {
        return;
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            job = rx.recv(), if in_flight.len() < CONCURRENCY => {
                let Some(target) = job else { return };
                let (node, client, config) = (node.clone(), client.clone(), config.clone());
                in_flight.push(async move {
                    let id = target.2.clone();
                    if let Err(why) = scan(&node, &client, &config, target).await {
                        tracing::warn!(attachment = %id, why, "attachment scan not done; a sweep retries it");
                    }
                    if let Some(scanner) = &node.scanner {
                        scanner.done(&id);
                    }
                });
            }
        }
    }
}

/// Every few seconds, queues the scans left undone longer than `retry_after`.
pub(crate) async fn sweep<K: Backend>(node: Arc<Node<K>>) {
    let (Some(attachments), Some(scanner), Some(config)) = (
        node.attachments.clone(),
        node.scanner.as_ref(),
        node.config.attachment_scanner.clone(),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        match attachments.pending_scans(config.retry_after, QUEUE).await {
            Ok(found) => found.into_iter().for_each(|t| scanner.enqueue(t)),
            Err(e) => tracing::warn!(error = %e, "cannot list the scans owed"),
        }
    }
}

/// Scans one attachment: asks the scanner, records its verdict as an event, then on the
/// file's record (which clears the mark).
async fn scan<K: Backend>(
    node: &Arc<Node<K>>,
    client: &Client<HttpConnector, Full<Bytes>>,
    config: &ScannerConfig,
    (tenant, conversation, attachment): Target,
) -> Result<(), String> {
    let attachments = node.attachments.as_ref().ok_or("no attachments")?;
    let fail = |e: chathub_attachments::AttachmentError| e.to_string();
    let Some(stored) = attachments
        .stored(&tenant, &conversation, &attachment)
        .await
        .map_err(fail)?
    else {
        // Never stored (the upload died before its record): nothing to scan.
        return attachments
            .clear_scan_mark(&tenant, &conversation, &attachment)
            .await
            .map_err(fail);
    };
    let verdict = match stored.card.status {
        AttachmentStatus::Pending => {
            let verdict = ask(node, client, config, &stored).await?;
            // The record first: a client asking for a link once it hears the verdict
            // gets one.
            attachments
                .set_status(&tenant, &conversation, &attachment, verdict)
                .await
                .map_err(fail)?;
            verdict
        }
        // Judged, but the mark is still there: the node died before telling (or
        // while telling) the conversation. Telling twice is harmless.
        done => done,
    };
    record_verdict(node, &stored, verdict).await?;
    attachments
        .clear_scan_mark(&tenant, &conversation, &attachment)
        .await
        .map_err(fail)?;
    ::metrics::counter!(crate::metrics::ATTACHMENT_SCANS, "verdict" => verdict.as_str())
        .increment(1);
    Ok(())
}

/// The request body the scanner gets.
#[derive(serde::Serialize)]
struct ScanRequest<'a> {
    tenant: &'a TenantId,
    conversation: &'a ConversationId,
    attachment: &'a AttachmentId,
    name: &'a str,
    content_type: &'a str,
    size: u64,
    sha256: &'a str,
    url: String,
}

#[derive(serde::Deserialize)]
struct ScanAnswer {
    verdict: String,
}

/// POSTs the file to the scanner until it answers (or the attempts run out).
async fn ask<K: Backend>(
    node: &Node<K>,
    client: &Client<HttpConnector, Full<Bytes>>,
    config: &ScannerConfig,
    stored: &Stored,
) -> Result<AttachmentStatus, String> {
    let url = crate::ops::attachments::download_url(
        node,
        stored,
        Variant::File,
        crate::auth::now_millis() / 1000 + 15 * 60,
    );
    let body = serde_json::to_vec(&ScanRequest {
        tenant: &stored.tenant,
        conversation: &stored.conversation,
        attachment: &stored.card.id,
        name: &stored.card.name,
        content_type: &stored.card.content_type,
        size: stored.card.size,
        sha256: &stored.sha256,
        url,
    })
    .map_err(|e| e.to_string())?;
    let body = Bytes::from(body);
    let signature = crate::webhook::signature(&config.secret, &body);
    let mut backoff = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=config.max_attempts.max(1) {
        let request = http::Request::post(&config.url)
            .header("content-type", "application/json")
            .header("x-chathub-attachment", stored.card.id.as_str())
            .header("x-chathub-signature", &signature)
            .body(Full::new(body.clone()))
            .map_err(|e| format!("bad scanner url: {e}"))?;
        match tokio::time::timeout(config.timeout, client.request(request)).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
                match limited.collect().await.map(|b| b.to_bytes()) {
                    Ok(bytes) => match serde_json::from_slice::<ScanAnswer>(&bytes) {
                        Ok(a) if a.verdict == "clean" => return Ok(AttachmentStatus::Clean),
                        Ok(a) if a.verdict == "blocked" => return Ok(AttachmentStatus::Blocked),
                        Ok(a) => last = format!("unknown verdict {:?}", a.verdict),
                        Err(e) => last = format!("unreadable answer: {e}"),
                    },
                    Err(e) => last = format!("answer: {e}"),
                }
            }
            Ok(Ok(resp)) => last = format!("HTTP {}", resp.status()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tracing::debug!(attempt, why = %last, "scanner attempt failed");
        if attempt < config.max_attempts.max(1) {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
    Err(format!("the scanner did not answer: {last}"))
}

/// Appends the verdict to the conversation, in the uploader's name (the server speaks
/// for the scanner; the rules let any actor record a verdict).
async fn record_verdict<K: Backend>(
    node: &Arc<Node<K>>,
    stored: &Stored,
    status: AttachmentStatus,
) -> Result<(), String> {
    let (role, actor) = match Participant::parse(&stored.uploader) {
        Some(Participant::EndUser(id)) => (Role::EndUser, Actor::EndUser(id)),
        Some(Participant::Agent(id)) => (
            Role::Agent,
            Actor::Agent {
                id,
                admin: false,
                privileges: Privileges::EMPTY,
                bot: false,
            },
        ),
        None => return Err(format!("bad uploader {:?}", stored.uploader)),
    };
    let identity = Identity {
        tenant: stored.tenant.clone(),
        role,
        subject: stored.uploader.clone(),
        privileges: Privileges::EMPTY,
        actor,
        expires_at: u64::MAX,
        name: String::new(),
        key: 0,
    };
    let cx = Ctx {
        node,
        identity: &identity,
    };
    let command = Command::RecordVerdict {
        attachment: stored.card.id.clone(),
        status,
    };
    crate::ops::apply::apply(&cx, stored.conversation.clone(), command)
        .await
        .map(|_| ())
        .map_err(|f| format!("{f:?}"))
}
