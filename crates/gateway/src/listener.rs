//! The accept loop and the WebSocket handshake: authenticate the token, pick the
//! subprotocol, or refuse with an HTTP status before any socket is opened.

use crate::auth::{AuthError, Identity};
use crate::metrics::HANDSHAKES_REFUSED;
use crate::tls::Transport;
use crate::{Backend, Node, session};
use chathub_protocol::Codec;
use http::{HeaderValue, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::task::TaskTracker;

/// Accepts connections until shutdown, at most `max_connections` at a time.
pub(crate) async fn accept_loop<K: Backend>(
    listener: TcpListener,
    node: Arc<Node<K>>,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(node.config.limits.max_connections));
    let handshakes = Arc::new(Semaphore::new(node.config.limits.max_handshakes.max(1)));
    let per_address: Arc<dashmap::DashMap<std::net::IpAddr, usize>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            _ = node.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE: back off a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "capacity").increment(1);
            drop(stream);
            continue;
        };
        // One address's share first, so it cannot take the slots the node has left.
        let limits = &node.config.limits;
        let share = AddressShare::take(
            &per_address,
            peer.ip(),
            limits.max_handshakes_per_address,
            &limits.trusted_proxies,
        );
        let Some(address_share) = share else {
            ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "per_address").increment(1);
            drop(stream);
            continue;
        };
        let Ok(handshake_permit) = handshakes.clone().try_acquire_owned() else {
            ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "handshakes").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let per_address = per_address.clone();
        let proxied = node.config.limits.proxy_protocol
            && node.config.limits.trusted_proxies.contains(&peer.ip());
        let connection = async move {
            let timeout = node.config.handshake_timeout;
            // The PROXY header (from a trusted balancer), TLS (when configured) and the
            // WebSocket handshake share the timeout. Each phase is boxed whole, so the
            // task keeps only a pointer to the current one: an idle socket does not carry
            // the handshake's timer, state or result (~680 B with the result left in the
            // task, ~12 KB unboxed; 168 B now). The handshake's phase hands back the
            // session's future, which takes everything it needs by value.
            let session = Box::pin(async move {
                let accepted = tokio::time::timeout(timeout, async {
                    let mut stream = stream;
                    // Behind a balancer speaking the PROXY protocol, the client's own
                    // address takes its share, as a direct client's does.
                    let _client_share = if proxied {
                        let client = match read_proxy_header(&mut stream).await {
                            Ok(client) => client,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "bad PROXY header");
                                return None;
                            }
                        };
                        let limits = &node.config.limits;
                        match AddressShare::take(
                            &per_address,
                            client,
                            limits.max_handshakes_per_address,
                            &[],
                        ) {
                            Some(share) => Some(share),
                            None => {
                                ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "per_address")
                                    .increment(1);
                                return None;
                            }
                        }
                    } else {
                        None
                    };
                    let transport = match &node.tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(s) => Transport::Tls(Box::new(s)),
                            Err(e) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return None;
                            }
                        },
                        None => Transport::Plain(stream),
                    };
                    handshake(transport, &node).await
                })
                .await;
                drop(handshake_permit);
                drop(address_share);
                match accepted {
                    Ok(Some((ws, identity, codec, seat))) => Some(Box::pin(async move {
                        session::run(node, ws, identity, codec).await;
                        drop(seat);
                    })),
                    Ok(None) => None,
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        None
                    }
                }
            })
            .await;
            if let Some(session) = session {
                session.await;
            }
            drop(permit);
        };
        tracker.spawn(connection);
    }
}

/// Reads a PROXY protocol v1 header (`PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, at
/// most 107 bytes, read byte by byte so nothing after it is consumed) and returns the
/// client's address. `PROXY UNKNOWN` (a balancer's own health check) gives the proxy's
/// unspecified address.
async fn read_proxy_header(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<std::net::IpAddr> {
    use tokio::io::AsyncReadExt;
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = Vec::with_capacity(107);
    loop {
        let byte = stream.read_u8().await?;
        line.push(byte);
        if line.ends_with(b"\r\n") {
            break;
        }
        if line.len() >= 107 {
            return Err(invalid("PROXY header too long"));
        }
    }
    let line = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| invalid("not ASCII"))?;
    let mut fields = line.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(invalid("no PROXY header"));
    }
    match fields.next() {
        Some("TCP4") | Some("TCP6") => fields
            .next()
            .and_then(|src| src.parse().ok())
            .ok_or_else(|| invalid("bad source address")),
        Some("UNKNOWN") => Ok(std::net::IpAddr::from([0, 0, 0, 0])),
        _ => Err(invalid("bad PROXY protocol")),
    }
}

/// One connection (or handshake) in progress from an address, counted against its share
/// until dropped.
pub(crate) struct AddressShare {
    counts: Arc<dashmap::DashMap<std::net::IpAddr, usize>>,
    address: Option<std::net::IpAddr>,
}

impl AddressShare {
    /// Takes a place in `address`'s share, or `None` when it has none left. Trusted
    /// proxies carry many clients and take no share.
    pub(crate) fn take(
        counts: &Arc<dashmap::DashMap<std::net::IpAddr, usize>>,
        address: std::net::IpAddr,
        limit: usize,
        trusted: &[std::net::IpAddr],
    ) -> Option<AddressShare> {
        if trusted.contains(&address) {
            return Some(AddressShare {
                counts: counts.clone(),
                address: None,
            });
        }
        let mut count = counts.entry(address).or_insert(0);
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(AddressShare {
            counts: counts.clone(),
            address: Some(address),
        })
    }
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            // Removed at zero, so addresses seen once do not accumulate.
            self.counts.remove_if_mut(&address, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
    }
}

/// The WebSocket settings of every socket, from the limits: small buffers, bounded
/// messages (tungstenite's defaults are 64 MiB messages and 128 KiB buffers).
pub(crate) fn websocket_config<K>(node: &Node<K>) -> WebSocketConfig {
    let l = &node.config.limits;
    WebSocketConfig::default()
        .read_buffer_size(l.read_buffer_bytes)
        .write_buffer_size(l.write_buffer_bytes)
        // Bounded so a peer that stops reading cannot grow it without limit; the outbox
        // budget (checked before writing) is the real bound, this is the backstop.
        .max_write_buffer_size(l.outbox_bytes + l.write_buffer_bytes + l.max_message_bytes)
        .max_message_size(Some(l.max_message_bytes))
        .max_frame_size(Some(l.max_message_bytes))
}

type Accepted = (
    tokio_tungstenite::WebSocketStream<Transport>,
    Identity,
    Codec,
    Seat,
);

/// One of a person's socket places on this node, given back on drop.
pub(crate) struct Seat {
    key: (chathub_domain::TenantId, String),
    table: Arc<dashmap::DashMap<(chathub_domain::TenantId, String), usize>>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.table.remove_if_mut(&self.key, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

async fn handshake<K: Backend>(stream: Transport, node: &Node<K>) -> Option<Accepted> {
    let mut admitted: Option<(Identity, Codec, Seat)> = None;
    // The error type is fixed by tungstenite's callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let (codec, echo) = match choose_codec(req) {
            Ok(x) => x,
            Err(offered) => {
                ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "subprotocol").increment(1);
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unsupported subprotocol {offered:?}; offer {} or {}",
                        Codec::MSGPACK_SUBPROTOCOL,
                        Codec::JSON_SUBPROTOCOL
                    ),
                ));
            }
        };
        if !origin_allowed(req, &node.config.allowed_origins) {
            ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "origin").increment(1);
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "origin not allowed".to_owned(),
            ));
        }
        let identity = match token_of(req).and_then(|t| node.auth.verify(t)) {
            Ok(identity) => identity,
            Err(e) => {
                ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "unauthorized").increment(1);
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    format!("unauthorized: {e}"),
                ));
            }
        };
        let key = (identity.tenant.clone(), identity.subject.clone());
        {
            let mut seats = node.per_subject.entry(key.clone()).or_insert(0);
            if *seats >= node.config.limits.max_sockets_per_subject {
                drop(seats);
                ::metrics::counter!(HANDSHAKES_REFUSED, "reason" => "per_subject").increment(1);
                return Err(refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many open sockets for this user".to_owned(),
                ));
            }
            *seats += 1;
        }
        let seat = Seat {
            key,
            table: node.per_subject.clone(),
        };
        if echo {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(codec.subprotocol()),
            );
        }
        admitted = Some((identity, codec, seat));
        Ok(resp)
    };
    let config = websocket_config(node);
    match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await {
        Ok(ws) => admitted.map(|(identity, codec, seat)| (ws, identity, codec, seat)),
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            None
        }
    }
}

#[allow(clippy::result_large_err)]
fn refuse(status: StatusCode, text: String) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(text + "\n"));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    resp
}

/// Whether the request's `Origin` (if any) is allowed: exactly one of `allowed`
/// (compared case-insensitively, as origins are), or anything when `allowed` is empty.
fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match req.headers().get("origin") {
        None => true,
        Some(origin) => origin
            .to_str()
            .map(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim())))
            .unwrap_or(false),
    }
}

/// The one token of the request: `Authorization: Bearer …` or the `token` query
/// parameter (browsers cannot set headers on WebSocket requests). Several (a header and
/// a query token, two of either) are ambiguous and refused, whichever is valid: a
/// proxy or a client must never have one taken over the other.
fn token_of(req: &Request) -> Result<&str, AuthError> {
    let headers = req.headers().get_all("authorization");
    let mut found: Vec<&str> = Vec::with_capacity(1);
    for value in headers {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AuthError::Invalid)?;
        found.push(token);
    }
    if let Some(query) = req.uri().query() {
        found.extend(
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("token=")),
        );
    }
    match found.as_slice() {
        [] => Err(AuthError::Missing),
        [token] if !token.is_empty() => Ok(token),
        [_] => Err(AuthError::Missing),
        _ => Err(AuthError::Ambiguous),
    }
}

/// The codec from `Sec-WebSocket-Protocol`: the first of ours the client offers (and
/// `true`: echo it back). No header means JSON, for plain tools (and nothing to echo).
/// Offering only unknown subprotocols is an error carrying what was offered.
fn choose_codec(req: &Request) -> Result<(Codec, bool), String> {
    let mut offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .peekable();
    if offered.peek().is_none() {
        return Ok((Codec::Json, false));
    }
    let mut seen = Vec::new();
    for name in offered {
        if let Some(codec) = Codec::from_subprotocol(name) {
            return Ok((codec, true));
        }
        seen.push(name.to_owned());
    }
    Err(seen.join(", "))
}
