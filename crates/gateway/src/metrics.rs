//! Metric names and the process-wide Prometheus recorder.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Open sockets, by role.
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

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process (several nodes in one test process
/// share it).
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, whose metrics then win.
        let _ = ::metrics::set_global_recorder(recorder);
        handle
    });
}

/// The metrics in Prometheus text format.
pub(crate) fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}
