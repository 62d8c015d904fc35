//! The browser side served by every node: the agent console at `/console/`, the end-user
//! demo client at `/demo/`, and the small JSON documents they start from. The assets are
//! compiled into the binary, so `chathub serve` alone serves them.

use crate::{Backend, Node};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::sync::Arc;

/// One embedded file: its URL path, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/console/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../web/console/index.html"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/console/console.js"),
    },
    Asset {
        path: "/demo/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../web/demo/index.html"),
    },
    Asset {
        path: "/demo/demo.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/demo/demo.js"),
    },
    // The SDK (clients/typescript), bundled: `npm run bundle` there rewrites it, and
    // its `npm test` fails when the committed bundle is not what the sources build.
    Asset {
        path: "/assets/chathub-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/assets/chathub-client.js"),
    },
    Asset {
        path: "/assets/ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/assets/ui.js"),
    },
    Asset {
        path: "/assets/signin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/assets/signin.js"),
    },
    Asset {
        path: "/assets/chathub.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/assets/chathub.css"),
    },
];

/// Pages may load scripts and styles from this node only, open WebSockets anywhere (the
/// WebSocket port differs from this one), and reach the attachment URLs' origin (the
/// HTTP side as clients see it, which may differ from the page's own: `{files}`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' {files} ws: wss:; \
     img-src 'self' {files} data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn routes<K: Backend>() -> Router<Arc<Node<K>>> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/demo", get(|| async { Redirect::to("/demo/") }))
        .route("/client-config.json", get(client_config::<K>))
        .route("/demo-tokens.json", get(demo_tokens::<K>));
    for asset in ASSETS {
        router = router.route(
            asset.path,
            get(move |State(node): State<Arc<Node<K>>>| async move {
                serve_asset(asset, &node.http_base)
            }),
        );
    }
    router
}

fn serve_asset(asset: &'static Asset, files: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Assets change with the binary; revalidating is cheap and avoids a stale console
    // after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The origin only (scheme, host, port), and nothing that could break the header.
    let origin: String = files
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/")
        .chars()
        .filter(|c| !matches!(c, ';' | ',' | ' ' | '\'' | '"'))
        .collect();
    let policy = CONTENT_SECURITY_POLICY.replace("{files}", &origin);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&policy).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'self'; connect-src 'self' ws: wss:")
        }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    (headers, asset.body).into_response()
}

/// Where the pages open their WebSocket, and whether the demo sign-in is offered.
#[derive(serde::Serialize)]
struct ClientConfig {
    /// Explicit URL (`--public-ws-url`), if configured.
    ws_url: Option<String>,
    /// Otherwise: the page's host name with this port.
    ws_port: u16,
    /// `serve --demo` (a seed): `/demo-tokens.json` is available.
    demo: bool,
}

async fn client_config<K: Backend>(State(node): State<Arc<Node<K>>>) -> impl IntoResponse {
    axum::Json(ClientConfig {
        ws_url: node.config.public_ws_url.clone(),
        ws_port: node.ws_addr.port(),
        demo: node.config.seed.is_some(),
    })
}

/// Tokens for the demo tenant's people, for the one-click sign-in. Only with `--demo`
/// (whose tokens are printed on the console anyway); 404 otherwise.
async fn demo_tokens<K: Backend>(State(node): State<Arc<Node<K>>>) -> Response {
    let Some(seed) = &node.config.seed else {
        return (StatusCode::NOT_FOUND, "the demo tenant is not loaded\n").into_response();
    };
    match seed.sign_ins(&node.auth) {
        Ok(people) => axum::Json(people).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot mint demo tokens");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot mint demo tokens\n",
            )
                .into_response()
        }
    }
}
