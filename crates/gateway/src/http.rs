//! The HTTP side: health, readiness, metrics, the admin API and the web pages.

use crate::{Backend, Node};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;

pub(crate) async fn serve<K: Backend>(listener: TcpListener, node: Arc<Node<K>>) {
    let shutdown = node.shutdown.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<K>))
        .route("/metrics", get(metrics_text::<K>))
        .merge(crate::admin::routes::<K>())
        .merge(crate::web::routes::<K>())
        .with_state(node);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "http server failed");
    }
}

/// Ready when not shutting down and the backend can serve: load balancers stop sending
/// new connections as soon as shutdown starts.
async fn readyz<K: Backend>(State(node): State<Arc<Node<K>>>) -> impl IntoResponse {
    if node.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !node.backend.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "backend unavailable\n")
    } else {
        (StatusCode::OK, "ready\n")
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
        "# TYPE chathub_ready gauge\nchathub_ready {}\n",
        u8::from(node.backend.is_ready() && !node.shutdown.is_cancelled())
    ));
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
