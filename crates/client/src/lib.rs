//! An async client for chathub.
//!
//! [`Client::connect`] opens a socket (MessagePack subprotocol by default), waits for the
//! `welcome` frame, and runs one background task that writes requests and reads frames:
//! replies are matched to their request by `id`, everything else (events, queue updates,
//! typing, read marks) is queued for [`Client::next_event`].
//!
//! # Layout
//! - [`Client`]: requests and events.
//! - [`ClientError`]: what can go wrong, with the server's error frame when it answered.

use chathub_domain::ConversationId;
use chathub_protocol::{
    Codec, ErrorFrame, Op, Reply, Request, SendAck, ServerFrame, Subscribed, Welcome,
};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the handshake with this HTTP status (401: bad token).
    #[error("handshake refused with HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Could not connect or the handshake failed otherwise.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The server answered the request with an error.
    #[error("server error {}: {}", .0.code.as_str(), .0.message)]
    Server(ErrorFrame),
    /// The connection is closed (see [`Client::close_code`]).
    #[error("connection closed")]
    Closed,
    /// The server sent something this client cannot read.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The server's error frame, if the server answered with one.
    pub fn server(&self) -> Option<&ErrorFrame> {
        match self {
            ClientError::Server(e) => Some(e),
            _ => None,
        }
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The subprotocol. Default MessagePack.
    pub codec: Codec,
    /// Send the token as `?token=` instead of `Authorization: Bearer`. Default false.
    pub token_in_query: bool,
    /// How long a request waits for its reply. Default 10 s.
    pub request_timeout: Duration,
    /// Frames (events) buffered for [`Client::next_event`]. Default 65 536.
    pub event_buffer: usize,
    /// Local address to connect from (load tests spread over 127.0.0.x to go past one
    /// address's ephemeral ports). Default: chosen by the OS.
    pub local_addr: Option<std::net::IpAddr>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            codec: Codec::MsgPack,
            token_in_query: false,
            request_timeout: Duration::from_secs(10),
            event_buffer: 65_536,
            local_addr: None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply, ErrorFrame>>>>>;

/// A connected client.
pub struct Client {
    outgoing: mpsc::Sender<Message>,
    events: mpsc::Receiver<ServerFrame>,
    pending: Pending,
    next_id: AtomicU64,
    welcome: Welcome,
    codec: Codec,
    timeout: Duration,
    close_code: watch::Receiver<Option<Option<u16>>>,
}

impl Client {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8080`) with `token` and default options.
    pub async fn connect(url: &str, token: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, token, ClientOptions::default()).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(
        url: &str,
        token: &str,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let url = if options.token_in_query {
            format!("{url}/?token={token}")
        } else {
            url.to_owned()
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(options.codec.subprotocol()),
        );
        if !options.token_in_query {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::Connect(e.to_string()))?;
            headers.insert("authorization", value);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(16 * 1024 * 1024));
        let connected = match options.local_addr {
            None => tokio_tungstenite::connect_async_with_config(request, Some(config), true).await,
            Some(ip) => {
                let stream = connect_from(ip, request.uri())
                    .await
                    .map_err(|e| ClientError::Connect(e.to_string()))?;
                tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await
            }
        };
        let (ws, _) = connected.map_err(|e| match e {
            WsError::Http(resp) => ClientError::Refused {
                status: resp.status().as_u16(),
                body: resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            e => ClientError::Connect(e.to_string()),
        })?;
        let (mut sink, mut stream) = ws.split();
        let codec = options.codec;
        // The first frame is always `welcome`.
        let welcome = loop {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => break decode(codec, &b)?,
                Some(Ok(Message::Text(t))) => break decode(codec, t.as_bytes())?,
                Some(Ok(_)) => continue,
                _ => return Err(ClientError::Closed),
            }
        };
        let ServerFrame::Welcome(welcome) = welcome else {
            return Err(ClientError::Protocol("first frame is not welcome".into()));
        };
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(1024);
        let (event_tx, event_rx) = mpsc::channel(options.event_buffer);
        let (close_tx, close_rx) = watch::channel(None);
        let pending: Pending = Arc::default();
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let mut code = None;
            loop {
                tokio::select! {
                    out = out_rx.recv() => match out {
                        Some(m) => if sink.send(m).await.is_err() { break },
                        None => { let _ = sink.close().await; break; }
                    },
                    incoming = stream.next() => {
                        let bytes = match incoming {
                            Some(Ok(Message::Binary(b))) => b,
                            Some(Ok(Message::Text(t))) => t.into(),
                            Some(Ok(Message::Close(frame))) => {
                                code = frame.map(|f| u16::from(f.code));
                                let _ = sink.flush().await;
                                break;
                            }
                            Some(Ok(_)) => continue,
                            Some(Err(_)) | None => break,
                        };
                        let Ok(frame) = codec.decode_server(&bytes) else { continue };
                        // Replies go to their waiting request; replies nobody waits for
                        // (e.g. to raw frames) and pushed frames go to the event queue.
                        let unclaimed = match frame {
                            ServerFrame::Ok { id, result } => respond(&reader_pending, id, Ok(result))
                                .err()
                                .map(|r| ServerFrame::Ok { id, result: r.unwrap_or(Reply::Ping {}) }),
                            ServerFrame::Err(e) if e.id.is_some() => {
                                let id = e.id.unwrap_or_default();
                                respond(&reader_pending, id, Err(e)).err().and_then(|r| r.err().map(ServerFrame::Err))
                            }
                            other => Some(other),
                        };
                        if let Some(frame) = unclaimed {
                            // If nobody reads events any more, they are dropped.
                            let _ = event_tx.send(frame).await;
                        }
                    }
                }
            }
            // Wake every waiting request: the connection is gone.
            reader_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            let _ = close_tx.send(Some(code));
        });
        Ok(Client {
            outgoing: out_tx,
            events: event_rx,
            pending,
            next_id: AtomicU64::new(1),
            welcome,
            codec,
            timeout: options.request_timeout,
            close_code: close_rx,
        })
    }

    /// The server's `welcome` frame.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends `op` and waits for its reply.
    pub async fn request(&self, op: Op) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let bytes = self
            .codec
            .encode_request(&Request { id, op })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send_raw(self.message(bytes.to_vec())).await?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(e))) => Err(ClientError::Server(e)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(ClientError::Timeout)
            }
        }
    }

    /// Sends a raw WebSocket message (for tests of bad input).
    pub async fn send_raw(&self, message: Message) -> Result<(), ClientError> {
        self.outgoing
            .send(message)
            .await
            .map_err(|_| ClientError::Closed)
    }

    fn message(&self, bytes: Vec<u8>) -> Message {
        if self.codec.is_binary() {
            Message::Binary(bytes.into())
        } else {
            Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())
        }
    }

    /// The next pushed frame (event, queue, typing, read, or an `err` without id).
    pub async fn next_event(&mut self) -> Option<ServerFrame> {
        self.events.recv().await
    }

    /// The next pushed frame, or `None` after `within`.
    pub async fn next_event_within(&mut self, within: Duration) -> Option<ServerFrame> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// A pushed frame already received, without waiting.
    pub fn try_next_event(&mut self) -> Option<ServerFrame> {
        self.events.try_recv().ok()
    }

    /// Waits for the connection to end and returns the server's close code (`None` when
    /// it ended without a close frame).
    pub async fn close_code(&mut self) -> Option<u16> {
        let mut rx = self.close_code.clone();
        match rx.wait_for(|c| c.is_some()).await {
            Ok(code) => code.flatten(),
            Err(_) => None,
        }
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self.outgoing.send(Message::Close(None)).await;
    }

    /// Sends a text message; agents pass the epoch they saw.
    pub async fn send_text(
        &self,
        conversation: Option<&ConversationId>,
        text: &str,
        epoch: Option<u64>,
        client_msg_id: Option<&str>,
    ) -> Result<SendAck, ClientError> {
        let reply = self
            .request(Op::Send {
                conversation: conversation.cloned(),
                client_msg_id: client_msg_id.map(str::to_owned),
                text: text.to_owned(),
                canned: None,
                engagement: None,
                attachment: None,
                epoch,
                visibility: Default::default(),
                handover_note: None,
            })
            .await?;
        match reply {
            Reply::Send(ack) => Ok(ack),
            other => Err(unexpected(other)),
        }
    }

    /// Writes a private note (agents): no epoch, and no end user ever sees it.
    pub async fn send_note(
        &self,
        conversation: &ConversationId,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Result<SendAck, ClientError> {
        let reply = self
            .request(Op::Send {
                conversation: Some(conversation.clone()),
                client_msg_id: client_msg_id.map(str::to_owned),
                text: text.to_owned(),
                canned: None,
                engagement: None,
                attachment: None,
                epoch: None,
                visibility: chathub_protocol::Visibility::Agents,
                handover_note: None,
            })
            .await?;
        match reply {
            Reply::Send(ack) => Ok(ack),
            other => Err(unexpected(other)),
        }
    }

    /// Subscribes to a conversation, replaying after `since`.
    pub async fn subscribe(
        &self,
        conversation: Option<&ConversationId>,
        since: Option<u64>,
    ) -> Result<Subscribed, ClientError> {
        self.resume(conversation, since, None).await
    }

    /// Subscribes after a reconnect: `since` and the `history_id` of the `welcome` it was
    /// seen under (the server says `history_lost` when its history is another one).
    pub async fn resume(
        &self,
        conversation: Option<&ConversationId>,
        since: Option<u64>,
        history_id: Option<&str>,
    ) -> Result<Subscribed, ClientError> {
        match self
            .request(Op::Subscribe {
                conversation: conversation.cloned(),
                since,
                history_id: history_id.map(str::to_owned),
            })
            .await?
        {
            Reply::Subscribe(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}

/// A TCP connection to the URI's host and port from `ip`.
async fn connect_from(
    ip: std::net::IpAddr,
    uri: &tokio_tungstenite::tungstenite::http::Uri,
) -> std::io::Result<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = match ip {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(std::net::SocketAddr::new(ip, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(tokio_tungstenite::MaybeTlsStream::Plain(stream))
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

/// Hands `result` to the request waiting for `id`; gives it back when nobody waits.
#[allow(clippy::result_large_err)] // returned straight back to the caller, never stored
fn respond(
    pending: &Pending,
    id: u64,
    result: Result<Reply, ErrorFrame>,
) -> Result<(), Result<Reply, ErrorFrame>> {
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    match waiter {
        Some(tx) => {
            let _ = tx.send(result);
            Ok(())
        }
        None => Err(result),
    }
}

fn decode(codec: Codec, bytes: &[u8]) -> Result<ServerFrame, ClientError> {
    codec.decode_server(bytes).map_err(ClientError::Protocol)
}
