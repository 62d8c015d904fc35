//! A chathub gateway node: accepts WebSocket connections, authenticates them in the
//! handshake, runs one [`Session`](session) per socket, fans events out to local sessions
//! through the [`Hub`], and serves the HTTP side. It holds no conversation state: every
//! decision is the backend's.
//!
//! # Layout
//! - `node`: what every session of a node shares (`Node`), starting and
//!   stopping a node ([`start_embedded`], [`start_redis`], [`RunningGateway`]).
//! - [`config`]: typed settings with documented defaults.
//! - [`auth`]: token verification and minting.
//! - [`backend`]: the services behind the node ([`EmbeddedBackend`] by default).
//! - `listener`: the accept loop and the handshake (auth, subprotocol).
//! - `session`: one socket, the socket loop only: read frames, hand requests to `ops`,
//!   write replies and events in `seq` order, keepalive, close; generic over the socket
//!   (`Sink + Stream`) so its logic is unit-tested over channels (`session_tests.rs`).
//! - `ops`: what each request does: one dispatch, one file per request family; the
//!   socket and the admin API both call it.
//! - `http`: `/healthz`, `/readyz`, `/metrics`; `admin`: the admin HTTP API; `web`: the
//!   agent console and the end-user demo client; `attachments`: the upload, completion
//!   and download URLs of attachments (signed tickets; the store is
//!   `chathub_attachments`).
//! - `scanner`: the attachment scanner hook (verdicts as conversation events; durable
//!   scan marks swept by every node).
//! - `metrics`: metric names and the Prometheus recorder.
//! - [`webhook`]: offline delivery to the brand's push service (durable jobs).
//! - [`seed`]: data loaded at start and its one-click sign-ins (the binary's demo).

mod admin;
mod alerts;
mod attachments;
pub mod auth;
pub mod backend;
pub mod config;
mod hours;
mod http;
mod listener;
mod metrics;
mod node;
mod openapi;
mod ops;
mod retention;
mod scanner;
pub mod seed;
mod session;
mod stall;
pub mod tls;
mod web;
pub mod webhook;

pub use auth::{AuthError, Authenticator, Claims, Identity};
pub use backend::{Backend, BackendError, EmbeddedBackend, RedisBackend, RedisConfig, RedisTarget};
pub use chathub_broker::Hub;
pub use chathub_ownership::RedisOwnershipConfig;
pub use chathub_ownership::redis::{FaultPoint, SweepConfig};
pub use chathub_store::MemoryStoreConfig;
pub use chathub_store::postgres::ArchiveConfig;
pub use chathub_store::sqlite::{DataDirConfig, SyncMode};
pub use config::{AuthConfig, DEV_SECRET, GatewayConfig, LimitsConfig, WebhookConfig};
pub(crate) use node::Node;
pub use node::{RunningGateway, Stopped, start_embedded, start_embedded_with_data, start_redis};
pub use tls::{TlsConfig, TlsError};

use std::net::SocketAddr;

/// Errors starting a gateway node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The backend could not be started.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The configuration is refused (a secret too short, …): the message says what.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The seed could not be loaded.
    #[error("cannot load the seed data: {0}")]
    Seed(String),
    /// The attachments' object store or staging directory could not be opened.
    #[error("cannot open the attachments' store: {0}")]
    Attachments(#[source] chathub_attachments::AttachmentError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
