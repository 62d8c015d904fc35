//! Metric names and the process-wide Prometheus recorder.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Open sockets, by role.
/// HTTP connections closed at accept, by reason (`capacity`, `per_address`).
pub(crate) const HTTP_REFUSED: &str = "chathub_http_connections_refused_total";
pub(crate) const CONNECTIONS: &str = "chathub_connections";
/// Handshakes refused, by reason.
pub(crate) const HANDSHAKES_REFUSED: &str = "chathub_handshakes_refused_total";
/// Frames received from clients.
pub(crate) const FRAMES_IN: &str = "chathub_frames_in_total";
/// Frames written to clients.
pub(crate) const FRAMES_OUT: &str = "chathub_frames_out_total";
/// Requests answered, by op and result code (`ok` or an error code).
pub(crate) const REQUESTS: &str = "chathub_requests_total";
/// Sessions closed, by close code.
pub(crate) const CLOSES: &str = "chathub_session_closes_total";
/// Catch-ups from history run because a subscription was re-established.
pub(crate) const RESYNCS: &str = "chathub_resyncs_total";
/// Events recovered from history because a `seq` gap was seen on the live path.
pub(crate) const GAP_REPAIRS: &str = "chathub_gap_repairs_total";
/// Seconds from a frame reaching this node (from the broker, or made here) to its write
/// on a socket: local fan-out, outbound queueing included.
pub(crate) const FANOUT_LATENCY: &str = "chathub_fanout_latency_seconds";
/// Backend calls that failed (Redis unreachable, timed out, or answered an error), by
/// what was being done.
pub(crate) const BACKEND_ERRORS: &str = "chathub_backend_errors_total";
/// Attachment scans done, by verdict (`clean`, `blocked`).
pub(crate) const ATTACHMENT_SCANS: &str = "chathub_attachment_scans_total";
/// Attachments stored (uploads complete and checked).
pub(crate) const ATTACHMENTS_STORED: &str = "chathub_attachments_stored_total";
/// Conversations transferred (handed to a named agent, or assigned by an admin).
pub(crate) const TRANSFERS: &str = "chathub_transfers_total";
/// End users erased (`DELETE /admin/v1/users/{user}`).
pub(crate) const ERASURES: &str = "chathub_erasures_total";
/// What the retention sweep removed, by `what` (`conversations`, `events`, `files`).
pub(crate) const RETENTION_REMOVED: &str = "chathub_retention_removed_total";
/// Conversations given back to the queue, by `reason` (`owner_absent`, `no_reply`: the
/// tenant's stall policy; `admin`).
pub(crate) const RELEASES: &str = "chathub_releases_total";
/// Alerts of the tenants' alert schedules, by `level` (`reminder`, `escalation`,
/// `breach`) and `via` (`socket`: an agent's devices; `push`: the webhook), one per agent.
pub(crate) const ALERTS: &str = "chathub_alerts_total";
/// Automatic replies outside business hours (one per waiting end user and wait).
pub(crate) const AUTO_REPLIES: &str = "chathub_auto_replies_total";
/// Conversations the tenants' bots handed to the humans.
pub(crate) const BOT_HANDOFFS: &str = "chathub_bot_handoffs_total";
/// Conversations the tenants' bots opened as owners (new and reopened ones).
pub(crate) const BOT_OPENED: &str = "chathub_bot_conversations_total";
/// Breach steps reached (one per conversation and cycle).
pub(crate) const BREACHES: &str = "chathub_breaches_total";
/// Seconds from a conversation entering the queue to its first alert.
pub(crate) const FIRST_ALERT: &str = "chathub_first_alert_seconds";
/// Unanswered conversations of a tenant with a timer policy, by `age` band (`lt_1m`,
/// `1m_5m`, `5m_15m`, `ge_15m`), as the latest timer round saw them.
pub(crate) const UNANSWERED_BY_AGE: &str = "chathub_unanswered_conversations";
/// How long the tenant's oldest unanswered conversation has waited, seconds (latest round).
pub(crate) const UNANSWERED_OLDEST: &str = "chathub_unanswered_oldest_seconds";
/// Retention sweeps that failed (a store unreachable: the next one retries).
pub(crate) const RETENTION_FAILURES: &str = "chathub_retention_failures_total";
/// Admin actions recorded in the audit log, by action.
pub(crate) const AUDIT_RECORDED: &str = "chathub_audit_recorded_total";
/// Seconds a conversation waited in `unanswered`, by how the wait ended (`taken`,
/// `finished`).
pub(crate) const UNANSWERED_WAIT: &str = "chathub_unanswered_wait_seconds";
/// Seconds from the end user's message that put a conversation in the queue to the first
/// agent reply (which takes it).
pub(crate) const FIRST_REPLY: &str = "chathub_first_reply_seconds";
/// Ownership races, by outcome: `won` (a take or take-over), `lost` (`conflict`).
pub(crate) const TAKES: &str = "chathub_takes_total";
/// Resumes (`subscribe` with `since`), by outcome: `no_gap` (nothing missed), `gap`
/// (missed events replayed), `truncated` (history no longer reached back).
pub(crate) const RESUMES: &str = "chathub_resumes_total";

/// Histogram buckets for the `_seconds` metrics: fan-out latency sits in the
/// sub-millisecond range, queue waits in seconds to hours.
const SECONDS_BUCKETS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Handles of the metrics touched for every frame, registered once (after [`install`]):
/// the `counter!`/`histogram!` macros look the metric up in the registry on every call,
/// which is waste on the per-delivery path.
pub(crate) struct HotMetrics {
    /// [`FRAMES_IN`].
    pub(crate) frames_in: ::metrics::Counter,
    /// [`FRAMES_OUT`].
    pub(crate) frames_out: ::metrics::Counter,
    /// [`FANOUT_LATENCY`].
    pub(crate) fanout_latency: ::metrics::Histogram,
}

impl HotMetrics {
    /// Registers the handles with the installed recorder.
    pub(crate) fn register() -> Self {
        HotMetrics {
            frames_in: ::metrics::counter!(FRAMES_IN),
            frames_out: ::metrics::counter!(FRAMES_OUT),
            fanout_latency: ::metrics::histogram!(FANOUT_LATENCY),
        }
    }
}

/// Installs the Prometheus recorder once per process (several nodes in one test process
/// share it).
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Only fails for an empty bucket list.
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, whose metrics then win.
        let _ = ::metrics::set_global_recorder(recorder);
        zero_failure_series();
        handle
    });
}

/// The series that count failures exist from the first scrape, at 0: dashboards and
/// alert rules (`deploy/observability/`) then see "none" rather than "no data".
fn zero_failure_series() {
    for during in ["apply", "store", "subscribe", "attachments", "health_check"] {
        ::metrics::counter!(BACKEND_ERRORS, "during" => during).increment(0);
    }
    for reason in ["capacity", "per_address"] {
        ::metrics::counter!(HTTP_REFUSED, "reason" => reason).increment(0);
    }
    for reason in [
        "capacity",
        "per_address",
        "handshakes",
        "subprotocol",
        "origin",
        "unauthorized",
        "per_subject",
    ] {
        ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => reason).increment(0);
    }
    ::metrics::counter!(TAKES, "outcome" => "lost").increment(0);
    ::metrics::counter!(GAP_REPAIRS).increment(0);
    ::metrics::counter!(RESYNCS).increment(0);
    ::metrics::counter!(ATTACHMENTS_STORED).increment(0);
    ::metrics::counter!(TRANSFERS).increment(0);
    ::metrics::counter!(ERASURES).increment(0);
    for what in ["conversations", "events", "files"] {
        ::metrics::counter!(RETENTION_REMOVED, "what" => what).increment(0);
    }
    ::metrics::counter!(RETENTION_FAILURES).increment(0);
    for reason in ["owner_absent", "no_reply", "admin"] {
        ::metrics::counter!(RELEASES, "reason" => reason).increment(0);
    }
    ::metrics::counter!(AUDIT_RECORDED, "action" => "tenant_chat_switched").increment(0);
    for level in ["reminder", "escalation", "breach"] {
        for via in ["socket", "push"] {
            ::metrics::counter!(ALERTS, "level" => level, "via" => via).increment(0);
        }
    }
    ::metrics::counter!(BREACHES).increment(0);
    ::metrics::counter!(AUTO_REPLIES).increment(0);
    ::metrics::counter!(BOT_HANDOFFS).increment(0);
    ::metrics::counter!(BOT_OPENED).increment(0);
    for verdict in ["clean", "blocked"] {
        ::metrics::counter!(ATTACHMENT_SCANS, "verdict" => verdict).increment(0);
    }
}

/// The metrics in Prometheus text format.
pub(crate) fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// Counts takes, and for a change that ends a wait in `unanswered` (a take, or a finish
/// by an admin) observes how long it waited: `queued_since` is when the conversation had
/// entered the queue, as the atomic step found it in the queue entry it replaced (no
/// extra read, nothing after the reply).
pub(crate) fn observe_ownership_change(event: &chathub_domain::Event, queued_since: Option<u64>) {
    use chathub_domain::{Cause, EventBody};
    let EventBody::Status { cause, .. } = &event.body else {
        return;
    };
    let outcome = match cause {
        Cause::Taken => {
            ::metrics::counter!(TAKES, "outcome" => "won", "kind" => "taken").increment(1);
            "taken"
        }
        Cause::TakenOver => {
            ::metrics::counter!(TAKES, "outcome" => "won", "kind" => "taken_over").increment(1);
            return;
        }
        Cause::Transferred => {
            ::metrics::counter!(TRANSFERS).increment(1);
            // Handed on from an owner: no wait ended. Assigned out of the queue: it did.
            if matches!(
                &event.body,
                EventBody::Status {
                    previous_owner: Some(_),
                    ..
                }
            ) {
                return;
            }
            "assigned"
        }
        Cause::Finished => "finished",
        Cause::Released => {
            if let EventBody::Status {
                reason: Some(reason),
                ..
            } = &event.body
            {
                ::metrics::counter!(RELEASES, "reason" => reason.as_str()).increment(1);
            }
            return;
        }
        Cause::HandedOff => {
            ::metrics::counter!(BOT_HANDOFFS).increment(1);
            return;
        }
        // Opened or reopened owned: the tenant's bot answers first.
        Cause::Opened | Cause::Reopened => {
            if matches!(&event.body, EventBody::Status { owner: Some(_), .. }) {
                ::metrics::counter!(BOT_OPENED).increment(1);
            }
            return;
        }
        _ => return,
    };
    if let Some(since) = queued_since {
        let waited = event.at.saturating_sub(since) as f64 / 1000.0;
        ::metrics::histogram!(UNANSWERED_WAIT, "outcome" => outcome).record(waited);
        if outcome == "taken" {
            ::metrics::histogram!(FIRST_REPLY).record(waited);
        }
    }
}
