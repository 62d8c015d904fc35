//! The offline delivery webhook: agents' messages for end users with no live socket, and
//! notes mentioning agents with no live socket, are POSTed to the brand's push service.
//!
//! Body (JSON): `{"type", "id", "tenant", "conversation", "seq", "at", "author",
//! "content"}`, `type` `message` (to the end user) or `mention` (to the agent named in
//! `agent`; `content` is the note's text).
//! Headers: `X-Chathub-Delivery: <id>` (stable across retries: receivers deduplicate by
//! it) and `X-Chathub-Signature: sha256=<hex HMAC-SHA256 of the body>`. A delivery is
//! retried with exponential backoff until a 2xx answer or `max_attempts`; the node also
//! remembers recent ids and never queues the same one twice.
//!
//! Every delivery is a durable job (see `chathub_store::jobs`), recorded by the atomic
//! step with the message: the node that applied it queues it here at once and completes
//! the job when the delivery ends (delivered or given up); a job whose node died is
//! claimed by any node's sweeper once its lease is over, so a node's death loses no push.
//! Delivery is at least once: a receiver deduplicates by `X-Chathub-Delivery`.

use crate::config::WebhookConfig;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Delivery ids remembered for deduplication.
const REMEMBERED: usize = 10_000;

/// One notification.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// `message` or `survey` (a push to the end user), `mention` or `alert` (to
    /// `agent`), `breach` (the tenant's: a conversation waited past its breach step).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `tenant/conversation/seq` (and `/agent` for a mention): unique per push.
    pub id: String,
    /// A mention's agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Tenant.
    pub tenant: String,
    /// Conversation (the end user).
    pub conversation: String,
    /// The message's `seq`.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// Who wrote it (absent for a survey: the tenant asks it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<chathub_domain::Author>,
    /// What it says.
    pub content: chathub_domain::MessageContent,
    /// An `alert` or `breach`: the alert as agents' devices get it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<chathub_protocol::AlertFrame>,
    /// The durable job to complete when the delivery ends.
    #[serde(skip)]
    pub job: Option<chathub_store::WebhookJob>,
}

/// The queue into the webhook worker. Cheap to clone.
#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Delivery>,
    seen: Arc<Mutex<(HashSet<String>, VecDeque<String>)>>,
}

impl Webhook {
    /// A webhook, its worker (spawn the future; it ends when every handle is gone) and
    /// the jobs of the deliveries that ended, to complete (a job whose completion is lost
    /// is delivered again after its lease: at least once).
    pub fn new(
        config: WebhookConfig,
    ) -> (
        Webhook,
        impl std::future::Future<Output = ()> + Send,
        mpsc::Receiver<chathub_store::WebhookJob>,
    ) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let (done_tx, done_rx) = mpsc::channel(config.queue.max(1));
        let hook = Webhook {
            tx,
            seen: Arc::default(),
        };
        (hook, worker(config, rx, done_tx), done_rx)
    }

    /// Queues `delivery` unless its id was queued before on this node. Never waits:
    /// when the queue is full the delivery is dropped and counted (its job stays, and
    /// comes back after its lease).
    pub fn enqueue(&self, delivery: Delivery) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.contains(&delivery.id) {
            return;
        }
        let id = delivery.id.clone();
        if self.tx.try_send(delivery).is_err() {
            ::metrics::counter!("chathub_webhook_dropped_total").increment(1);
            return;
        }
        seen.0.insert(id.clone());
        seen.1.push_back(id);
        if seen.1.len() > REMEMBERED
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
    }
}

/// The signature header value of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn worker(
    config: WebhookConfig,
    mut rx: mpsc::Receiver<Delivery>,
    done: mpsc::Sender<chathub_store::WebhookJob>,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    while let Some(delivery) = rx.recv().await {
        let body = match serde_json::to_vec(&delivery) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode webhook delivery");
                continue;
            }
        };
        let signature = signature(&config.secret, &body);
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=config.max_attempts.max(1) {
            let request = http::Request::post(&config.url)
                .header("content-type", "application/json")
                .header("x-chathub-delivery", &delivery.id)
                .header("x-chathub-signature", &signature)
                .body(Full::new(body.clone()));
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, url = %config.url, "bad webhook url");
                    break;
                }
            };
            let sent = tokio::time::timeout(config.timeout, client.request(request)).await;
            match sent {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    ::metrics::counter!("chathub_webhook_delivered_total").increment(1);
                    break;
                }
                outcome => {
                    tracing::debug!(attempt, ?outcome, id = %delivery.id, "webhook attempt failed");
                    if attempt == config.max_attempts.max(1) {
                        ::metrics::counter!("chathub_webhook_failed_total").increment(1);
                        tracing::warn!(id = %delivery.id, "webhook delivery gave up");
                    } else {
                        ::metrics::counter!("chathub_webhook_retries_total").increment(1);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        if let Some(job) = delivery.job
            && done.try_send(job).is_err()
        {
            // Not completed: the job comes back after its lease (at least once).
            tracing::debug!(id = %delivery.id, "webhook job completion dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
