//! The HTTP side: health, readiness, metrics, the admin API and the web pages.

use crate::{Backend, Node};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest read buffer of one HTTP connection, in bytes.
const HTTP_READ_BUFFER: usize = 64 * 1024;

/// Serves the HTTP side on `listener` until the node shuts down. Bounded like the
/// WebSocket port: at most `max_http_connections` open (more are closed at accept), at
/// most `max_http_connections_per_address` from one address (so one client cannot take
/// the balancer's `/healthz`), headers within `http_header_timeout` and no longer idle
/// than it between requests.
pub(crate) async fn serve<K: Backend>(listener: TcpListener, node: Arc<Node<K>>) {
    use crate::listener::AddressShare;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let shutdown = node.shutdown.clone();
    let limits = node.config.limits.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<K>))
        .route("/metrics", get(metrics_text::<K>))
        .merge(crate::admin::routes::<K>())
        .merge(crate::attachments::routes::<K>())
        .merge(crate::web::routes::<K>())
        .with_state(node.clone());
    let open = Arc::new(tokio::sync::Semaphore::new(
        limits.max_http_connections.max(1),
    ));
    let per_address: Arc<dashmap::DashMap<std::net::IpAddr, usize>> = Arc::default();
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE: back off a little instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            ::metrics::counter!(crate::metrics::HTTP_REFUSED, "reason" => "capacity").increment(1);
            continue;
        };
        let share = AddressShare::take(
            &per_address,
            peer.ip(),
            limits.max_http_connections_per_address,
            &limits.trusted_proxies,
        );
        let Some(share) = share else {
            ::metrics::counter!(crate::metrics::HTTP_REFUSED, "reason" => "per_address")
                .increment(1);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let (shutdown, grace, timeout) = (
            shutdown.clone(),
            node.config.shutdown_grace,
            limits.http_header_timeout,
        );
        connections.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(timeout)
                // The read buffer of a connection (hyper's default grows to ~400 KB):
                // uploads stream through it, so twenty phones uploading at once hold
                // 64 KiB each, not 400.
                .max_buf_size(HTTP_READ_BUFFER)
                .keep_alive(true);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(grace, connection).await;
                }
            }
            drop((permit, share));
        });
    }
    connections.close();
    let _ = tokio::time::timeout(node.config.shutdown_grace, connections.wait()).await;
}

/// Ready when not shutting down and the backend can serve: load balancers stop sending
/// new connections as soon as shutdown starts.
async fn readyz<K: Backend>(State(node): State<Arc<Node<K>>>) -> impl IntoResponse {
    if node.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !node.backend.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "backend unavailable\n")
    } else {
        match node.backend.archive_degraded() {
            None => (StatusCode::OK, "ready\n"),
            Some(false) => (StatusCode::OK, "ready\narchive: ok\n"),
            // Sends still work (Redis is the hot tier); search and deep history do not.
            Some(true) => (StatusCode::OK, "ready\narchive: degraded\n"),
        }
    }
}

async fn metrics_text<K: Backend>(State(node): State<Arc<Node<K>>>) -> impl IntoResponse {
    let mut body = crate::metrics::render();
    // Gauges read straight from the hub, so they cannot drift.
    body.push_str(&format!(
        "# TYPE chathub_hub_channels gauge\nchathub_hub_channels {}\n\
         # TYPE chathub_hub_deliveries_total counter\nchathub_hub_deliveries_total {}\n\
         # TYPE chathub_hub_outbox_overflows_total counter\nchathub_hub_outbox_overflows_total {}\n",
        node.hub.channel_count(),
        node.hub.delivered(),
        node.hub.overflowed(),
    ));
    body.push_str(&format!(
        "# TYPE chathub_ready gauge\nchathub_ready {}\n\
         # TYPE chathub_backend_up gauge\nchathub_backend_up {}\n",
        u8::from(node.backend.is_ready() && !node.shutdown.is_cancelled()),
        u8::from(node.backend.is_ready()),
    ));
    if let Some(degraded) = node.backend.archive_degraded() {
        // With an archive only: 1 while its copy falls behind or PostgreSQL is down.
        body.push_str(&format!(
            "# TYPE chathub_archive_degraded gauge\nchathub_archive_degraded {}\n",
            u8::from(degraded)
        ));
    }
    if let Some(stats) = node.backend.pubsub_stats() {
        use std::sync::atomic::Ordering::Relaxed;
        body.push_str(&format!(
            "# TYPE chathub_pubsub_received_total counter\nchathub_pubsub_received_total {}\n\
             # TYPE chathub_pubsub_undecodable_total counter\nchathub_pubsub_undecodable_total {}\n\
             # TYPE chathub_pubsub_reconnects_total counter\nchathub_pubsub_reconnects_total {}\n\
             # TYPE chathub_pubsub_resyncs_total counter\nchathub_pubsub_resyncs_total {}\n",
            stats.received.load(Relaxed),
            stats.undecodable.load(Relaxed),
            stats.disconnects.load(Relaxed),
            stats.resyncs.load(Relaxed),
        ));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}
