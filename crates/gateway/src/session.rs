//! One WebSocket connection, the socket loop only: read frames and hand requests to
//! [`ops::dispatch`](crate::ops), write events from the outbox in `seq` order without
//! gaps or duplicates (repairing a gap from history), keep the connection alive, close it
//! with a documented code. What a request does is in [`crate::ops`].

use crate::auth::{Identity, now_secs};
use crate::metrics::{CLOSES, CONNECTIONS, GAP_REPAIRS, REQUESTS, RESYNCS};
use crate::ops::{self, Connection, Ctx, Failure, Follows, Gone};
use crate::{Backend, Node};
use bytes::Bytes;
use chathub_broker::outbox::{self, Outbox};
use chathub_broker::{Broker, Channel, Envelope, OutboxSender, SessionId};
use chathub_domain::{Actor, Presence, Role};
use chathub_protocol::{
    CloseCode, Codec, DecodeErrorKind, ErrorCode, ErrorFrame, Limits, ServerFrame, Welcome,
};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

/// How a session ends.
#[derive(Debug)]
pub(crate) enum End {
    /// Close with this code (sent to the client, then drained).
    Close(CloseCode),
    /// The connection is gone or closed by the client; nothing more to send.
    Gone,
}

/// A socket's request budget: a token bucket, and a count of refusals per 10 s window
/// past which the socket is closed as abusive.
pub(crate) struct RateBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    refusals: u32,
    window: Instant,
    abuse_limit: u32,
}

/// The window in which refusals are counted.
const ABUSE_WINDOW: Duration = Duration::from_secs(10);

impl RateBucket {
    /// The budget of a socket of `role` (a bot's is its own).
    fn new(limits: &crate::config::LimitsConfig, role: Role) -> Self {
        let now = Instant::now();
        let (rate, burst) = limits.rate_of(role);
        RateBucket {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
            refusals: 0,
            window: now,
            abuse_limit: limits.abuse_limit.max(1),
        }
    }

    /// Takes one request's token. `Err(true)` when the socket has been refused too often
    /// and must be closed, `Err(false)` for a plain refusal.
    fn take(&mut self, now: Instant) -> Result<(), bool> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if now.saturating_duration_since(self.window) > ABUSE_WINDOW {
            self.window = now;
            self.refusals = 0;
        }
        self.refusals += 1;
        Err(self.refusals > self.abuse_limit)
    }
}

/// What a session runs over: a WebSocket as a `Sink` of messages and a `Stream` of
/// them (axum's `testing-websockets` habit), so the session's logic is unit-tested over
/// channels. The node's sockets are `WebSocketStream<Transport>`.
pub(crate) trait Socket:
    futures::Sink<Message, Error = WsError>
    + futures::Stream<Item = Result<Message, WsError>>
    + Unpin
    + Send
    + 'static
{
    /// After closing with 1009: reads and throws away up to `budget` raw bytes until
    /// the peer closes (the rest of the oversized message cannot be parsed as frames).
    fn discard_rest(&mut self, budget: usize) -> impl Future<Output = ()> + Send;
}

impl Socket for WebSocketStream<crate::tls::Transport> {
    async fn discard_rest(&mut self, mut budget: usize) {
        let mut buf = [0u8; 4096];
        while budget > 0 {
            match self.get_mut().read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    }
}

/// `fut`, given `limit` from when it first has to wait (`None` past it). The timer is made,
/// boxed, only if `fut` waits: a socket that takes a write at once costs no timer, and
/// every idle socket's loop keeps 8 bytes for it instead of a 112-byte `Sleep`.
fn within<F: std::future::Future>(limit: Duration, fut: F) -> Within<F> {
    Within {
        fut,
        limit,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// See [`within`].
    struct Within<F> {
        #[pin]
        fut: F,
        limit: Duration,
        timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: std::future::Future> std::future::Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let std::task::Poll::Ready(out) = this.fut.poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        let limit = *this.limit;
        this.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
            .map(|()| None)
    }
}

/// How soon a failed catch-up from history is retried.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// One socket's session: who it is, its request budget, and its [`Link`].
pub(crate) struct Session<K, W> {
    node: Arc<Node<K>>,
    identity: Identity,
    /// Request budget (token bucket).
    bucket: RateBucket,
    /// The conversations this agent's own commands took out of the queue lately (alerts
    /// still in flight about them are dropped).
    fence: crate::alerts::AlertFence,
    link: Link<K, W>,
}

/// The socket side of a session, which requests act on through [`Connection`]: the
/// WebSocket, the followed conversations, this device's presence.
pub(crate) struct Link<K, W> {
    node: Arc<Node<K>>,
    ws: W,
    id: SessionId,
    /// `<node>-<n>`, as in `welcome` and presence records.
    key: String,
    codec: Codec,
    outbox_tx: OutboxSender,
    follows: Follows,
    /// Channels followed for the whole session: for agents the tenant's agents channel and
    /// their own; for end users the tenant's users channel.
    fixed: Vec<Channel>,
    /// This device's availability (agents choose; end users are simply online).
    presence: Presence,
}

/// Runs one session to its end.
///
/// A plain function returning the future, not an `async fn`: an `async fn` keeps its
/// arguments (the socket, the identity) in its future beside the session built from
/// them, ~500 B more in every idle socket's task.
pub(crate) fn run<K: Backend, W: Socket>(
    node: Arc<Node<K>>,
    ws: W,
    identity: Identity,
    codec: Codec,
) -> impl std::future::Future<Output = ()> + Send {
    let limits = &node.config.limits;
    let (frames, bytes) = limits.outbox_of(identity.role);
    let (outbox_tx, outbox) = outbox::channel(frames, bytes);
    let id = node.next_session.fetch_add(1, Ordering::Relaxed);
    let role = identity.role.as_str();
    let mut session = Session {
        bucket: RateBucket::new(limits, identity.role),
        fence: crate::alerts::AlertFence::default(),
        link: Link {
            node: node.clone(),
            ws,
            id,
            key: format!("{}-{id}", node.id),
            codec,
            outbox_tx,
            follows: Follows::default(),
            fixed: Vec::new(),
            presence: Presence::Available,
        },
        node,
        identity,
    };
    async move {
        ::metrics::gauge!(CONNECTIONS, "role" => role).increment(1.0);
        // What an idle socket holds is this future, so everything that is not the steady
        // loop (set-up, requests, history replays, tear-down) runs boxed: allocated while
        // it runs instead of being reserved in every socket's task for its whole life.
        let end = Box::pin(session.serve(outbox)).await;
        if let End::Close(code) = end {
            ::metrics::counter!(CLOSES, "code" => code.code().to_string()).increment(1);
            Box::pin(session.link.close(code)).await;
        }
        Box::pin(session.link.leave_all()).await;
        let cx = session.cx();
        Box::pin(ops::presence::went_offline(&cx, &session.link.key)).await;
        ::metrics::gauge!(CONNECTIONS, "role" => role).decrement(1.0);
    }
}

impl<K: Backend, W: Socket> Session<K, W> {
    /// The context of this session's requests.
    fn cx(&self) -> Ctx<'_, K> {
        Ctx {
            node: &self.node,
            identity: &self.identity,
        }
    }

    async fn serve(&mut self, mut outbox: Outbox) -> End {
        if let Err(end) = Box::pin(self.start()).await {
            return end;
        }
        let interval = self.node.config.ping_interval;
        let mut next_ping = Instant::now() + interval;
        // Set when a ping goes out, cleared by anything the client sends: a client that
        // lets a ping go unanswered for `ping_timeout` is closed then, not at the next tick.
        let mut pong_due: Option<Instant> = None;
        // When the channels whose catch-up failed are retried.
        let mut resync_at: Option<Instant> = None;
        // One timer for the three deadlines, boxed: every idle socket keeps this loop's
        // future, and each inline `Sleep` would add 112 bytes to it.
        let mut timer = Box::pin(tokio::time::sleep_until(next_ping));
        let shutdown = self.node.shutdown.clone();
        loop {
            if self.link.follows.pending_resync.is_empty() {
                resync_at = None;
            } else if resync_at.is_none() {
                resync_at = Some(Instant::now() + RESYNC_RETRY);
            }
            let deadline = [pong_due, resync_at]
                .into_iter()
                .flatten()
                .fold(next_ping, Instant::min);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Close(CloseCode::GoingAway),
                // Before the socket and the outbox: a session that always has a frame to
                // read or deliver (a bot answering a whole tenant) must still beat its
                // presence, ping, and re-validate its token. It is ready once per deadline.
                () = &mut timer => {
                    let now = Instant::now();
                    if pong_due.is_some_and(|due| due <= now) {
                        return End::Close(CloseCode::KeepaliveTimeout);
                    }
                    if resync_at.is_some_and(|at| at <= now) {
                        resync_at = None;
                        let pending: Vec<Channel> =
                            self.link.follows.pending_resync.iter().cloned().collect();
                        for channel in pending {
                            if let Err(end) = Box::pin(self.catch_up(&channel, None)).await {
                                return end;
                            }
                        }
                        if self.link.ws.flush().await.is_err() {
                            return End::Gone;
                        }
                    }
                    if next_ping <= now {
                        // The next ping an interval after this one (after a stall, not a
                        // burst of the missed ones).
                        next_ping = now + interval;

                        let cx = self.cx();
                        Box::pin(ops::presence::heartbeat(&cx, &self.link.key, self.link.presence)).await;
                        // Re-validation, every ping interval: the token's expiry, and whether
                        // the key that signed it is still accepted (key rotation).
                        // The same clock-skew leeway as the handshake: a token it would still
                        // accept must not close the session, or the client would loop.
                        let leeway = self.node.config.auth.leeway_secs;
                        if now_secs() > self.identity.expires_at + leeway {
                            return End::Close(CloseCode::TokenExpired);
                        }
                        if !self.node.auth.key_is_active(self.identity.key) {
                            return End::Close(CloseCode::TokenRevoked);
                        }
                        let ping = self.link.ws.send(Message::Ping(Bytes::new()));
                        match within(self.node.config.write_timeout, ping).await {
                            Some(Ok(())) => {}
                            Some(Err(_)) => return End::Gone,
                            None => return End::Close(CloseCode::SlowConsumer),
                        }
                        pong_due.get_or_insert(Instant::now() + self.node.config.ping_timeout);
                    }
                }
                incoming = self.link.ws.next() => {
                    pong_due = None;
                    if let Err(end) = Box::pin(self.on_message(incoming)).await {
                        return end;
                    }
                }
                item = outbox.recv() => match item {
                    Ok(Some(envelope)) => {
                        if let Err(end) = self.deliver_batch(envelope, &mut outbox).await {
                            return end;
                        }
                    }
                    Ok(None) => return End::Gone,
                    Err(_overflow) => return End::Close(CloseCode::SlowConsumer),
                },
            }
        }
    }

    /// Joins the session's fixed channels, sends `welcome` and announces presence.
    async fn start(&mut self) -> Result<(), End> {
        let tenant = self.identity.tenant.clone();
        let fixed = match &self.identity.actor {
            Actor::Agent { id, .. } => vec![Channel::agents(&tenant), Channel::agent(&tenant, id)],
            Actor::EndUser(_) => vec![Channel::users(&tenant)],
        };
        self.link.fixed.reserve_exact(fixed.len());
        for channel in fixed {
            if let Err(e) = self.link.join(&channel).await {
                tracing::warn!(error = %e, %channel, "cannot follow a session channel");
                return Err(End::Close(CloseCode::InternalError));
            }
            // Kept for the session's life: the hub's copy of the name, not another one.
            let channel = self.node.hub.shared_name(&channel).unwrap_or(channel);
            self.link.fixed.push(channel);
        }
        self.node.register_job_tenant(&tenant).await;
        let (chat_disabled, hours, bot) = match self.node.settings(&tenant).await {
            Ok(settings) => (
                settings.chat_disabled,
                settings
                    .hours
                    .as_ref()
                    .and_then(|h| crate::hours::state_now(h, crate::auth::now_millis())),
                // Agents see who the bot is; end users just talk to it.
                settings
                    .bot
                    .as_ref()
                    .filter(|_| !matches!(self.identity.actor, Actor::EndUser(_)))
                    .map(|b| b.agent.clone()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read tenant settings");
                (false, None, None)
            }
        };
        // Read fresh (one round trip per connect): a client must never store seqs under
        // a history id that is already outdated.
        let history_id = match self.node.backend.current_history_id().await {
            Some(id) => id,
            None => self.node.backend.history_id(),
        };
        let welcome = self.welcome(chat_disabled, history_id, hours, bot);
        if self.link.send_frame(&welcome).await.is_err() {
            return Err(End::Gone);
        }
        let cx = self.cx();
        ops::presence::heartbeat(&cx, &self.link.key, self.link.presence).await;
        ops::presence::announce(&cx).await;
        Ok(())
    }

    fn welcome(
        &self,
        chat_disabled: bool,
        history_id: String,
        hours: Option<chathub_protocol::HoursFrame>,
        bot: Option<chathub_domain::AgentId>,
    ) -> ServerFrame {
        let c = &self.node.config;
        let (rate_per_sec, rate_burst) = c.limits.rate_of(self.identity.role);
        ServerFrame::Welcome(Welcome {
            session: self.link.key.clone(),
            tenant: self.identity.tenant.clone(),
            role: self.identity.role,
            subject: self.identity.subject.clone(),
            privileges: self.identity.privileges,
            limits: Limits {
                max_message_bytes: c.limits.max_message_bytes as u32,
                max_text_bytes: c.limits.max_text_bytes as u32,
                max_page: c.limits.max_page as u32,
                ping_interval_ms: c.ping_interval.as_millis() as u64,
                ping_timeout_ms: c.ping_timeout.as_millis() as u64,
                rate_per_sec,
                rate_burst,
            },
            chat_disabled,
            history_id,
            hours,
            bot,
        })
    }

    async fn on_message(&mut self, incoming: Option<Result<Message, WsError>>) -> Result<(), End> {
        let message = match incoming {
            None => return Err(End::Gone),
            Some(Err(WsError::Capacity(_))) => return Err(End::Close(CloseCode::TooBig)),
            // RFC 6455: a protocol error or a text frame that is not UTF-8 fails the
            // connection with 1002 / 1007 (sent, then dropped), unless the peer is gone.
            Some(Err(WsError::Protocol(e))) if !is_peer_gone(&e) => {
                tracing::debug!(error = %e, session = self.link.id, "protocol error");
                return Err(End::Close(CloseCode::ProtocolError));
            }
            Some(Err(WsError::Utf8(_))) => return Err(End::Close(CloseCode::InvalidData)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, session = self.link.id, "read failed");
                return Err(End::Gone);
            }
            Some(Ok(m)) => m,
        };
        let (codec, bytes): (Codec, &[u8]) = match &message {
            Message::Text(t) => (Codec::Json, t.as_bytes()),
            Message::Binary(b) => (Codec::MsgPack, b),
            Message::Close(_) => {
                // tungstenite queued the close answer; flushing sends it.
                let _ = self.link.ws.flush().await;
                return Err(End::Gone);
            }
            // Pings are answered by tungstenite and pongs only prove liveness, but every
            // frame costs from the same budget as a request: a control-frame flood is cut
            // off like a request flood (no reply to refuse: the refusal only counts).
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                self.node.hot.frames_in.increment(1);
                return match self.bucket.take(Instant::now()) {
                    Err(true) => Err(End::Close(CloseCode::PolicyViolation)),
                    Err(false) => {
                        ::metrics::counter!(REQUESTS, "op" => "control", "result" => "rate_limited")
                            .increment(1);
                        Ok(())
                    }
                    Ok(()) => Ok(()),
                };
            }
        };
        self.node.hot.frames_in.increment(1);
        if let Err(abusive) = self.bucket.take(Instant::now()) {
            if abusive {
                return Err(End::Close(CloseCode::PolicyViolation));
            }
            ::metrics::counter!(REQUESTS, "op" => "any", "result" => "rate_limited").increment(1);
            let id = codec.decode_request(bytes).ok().map(|r| r.id);
            let refusal =
                ErrorFrame::new(id, ErrorCode::RateLimited, "too many requests; slow down");
            return self
                .link
                .send_frame(&ServerFrame::Err(refusal))
                .await
                .map_err(|_| End::Gone);
        }
        let reply = match codec.decode_request(bytes) {
            Ok(request) => {
                let op = request.op.name();
                let cx = Ctx {
                    node: &self.node,
                    identity: &self.identity,
                };
                match ops::dispatch(&cx, &mut self.link, request.op).await {
                    Ok(result) => {
                        ::metrics::counter!(REQUESTS, "op" => op, "result" => "ok").increment(1);
                        if !matches!(self.identity.actor, Actor::EndUser(_)) {
                            self.fence.after(&result);
                        }
                        ServerFrame::Ok {
                            id: request.id,
                            result,
                        }
                    }
                    Err(Failure::Gone) => return Err(End::Gone),
                    Err(Failure::Reply(mut e)) => {
                        ::metrics::counter!(REQUESTS, "op" => op, "result" => e.code.as_str())
                            .increment(1);
                        e.id = Some(request.id);
                        ServerFrame::Err(e)
                    }
                }
            }
            Err(e) => {
                let code = match e.kind {
                    DecodeErrorKind::UnknownOp => ErrorCode::UnknownOp,
                    _ => ErrorCode::BadRequest,
                };
                ::metrics::counter!(REQUESTS, "op" => "invalid", "result" => code.as_str())
                    .increment(1);
                ServerFrame::Err(ErrorFrame::new(e.id, code, e.detail))
            }
        };
        self.link.send_reply(reply).await.map_err(|_| End::Gone)
    }

    /// Writes `first` and whatever else is queued now, then flushes once.
    async fn deliver_batch(
        &mut self,
        first: Arc<Envelope>,
        outbox: &mut Outbox,
    ) -> Result<(), End> {
        let write_timeout = self.node.config.write_timeout;
        let batch = async {
            self.deliver(first).await?;
            // Bounded so a busy channel cannot starve reading and keepalive.
            for _ in 0..64 {
                let Some(next) = outbox.try_recv() else { break };
                self.deliver(next).await?;
            }
            self.link.ws.flush().await.map_err(|_| End::Gone)
        };
        match within(write_timeout, batch).await {
            Some(result) => result,
            None => Err(End::Close(CloseCode::SlowConsumer)),
        }
    }

    /// Feeds one envelope if the client should see it: conversation events continue the
    /// subscription's `seq` exactly (older ones are skipped, a gap is filled from history
    /// first); other frames go out if their channel is still followed.
    async fn deliver(&mut self, envelope: Arc<Envelope>) -> Result<(), End> {
        if envelope.resync {
            return Box::pin(self.resync(&envelope.channel)).await;
        }
        let follows = &self.link.follows;
        match delivery(
            follows.subs.get(&envelope.channel).map(|s| s.last_seq),
            follows.pending_resync.contains(&envelope.channel),
            self.link.fixed.contains(&envelope.channel),
            envelope.seq,
        ) {
            Delivery::Skip => return Ok(()),
            Delivery::Write => {}
            Delivery::RepairFirst => {
                // The broker lost events: fill the gap from history first.
                let seq = envelope.seq.unwrap_or_default();
                Box::pin(self.catch_up(&envelope.channel, Some(seq))).await?;
                if self.link.follows.pending_resync.contains(&envelope.channel) {
                    // History is unreadable now; this event comes with the retry.
                    return Ok(());
                }
            }
        }
        if let (Some(seq), Some(sub)) = (
            envelope.seq,
            self.link.follows.subs.get_mut(&envelope.channel),
        ) {
            sub.last_seq = seq;
        }
        if envelope.agents_only && matches!(self.identity.actor, Actor::EndUser(_)) {
            // A private note: the end user moves past its seq and never sees it.
            return Ok(());
        }
        if envelope.alert && self.fence.drops(&envelope.msgpack) {
            // About a wait this agent's own take ended, answered already.
            return Ok(());
        }
        self.link.write_envelope(&envelope).await?;
        if envelope.erased
            && let Actor::EndUser(user) = &self.identity.actor
            && envelope.channel
                == Channel::conversation(
                    &self.identity.tenant,
                    &chathub_domain::ConversationId::of_end_user(user),
                )
        {
            // Their data was erased: the device is told (the frame just written), then
            // closed, and must not resume what it held.
            return Err(End::Close(CloseCode::Erased));
        }
        Ok(())
    }

    /// The node's subscription to `channel` was re-established (or an earlier catch-up
    /// failed): whatever was published meanwhile may be lost, so write what history has
    /// after the last `seq` sent. If history cannot be read now, the channel is marked and
    /// retried shortly; its live events wait for that (they are in history too).
    async fn resync(&mut self, channel: &Channel) -> Result<(), End> {
        if self.link.follows.subs.contains_key(channel) {
            ::metrics::counter!(RESYNCS).increment(1);
        }
        self.catch_up(channel, None).await
    }

    /// Writes history after the subscription's last `seq` (up to `before`, exclusive),
    /// advancing it as events go out. Returns `Ok` also when history is unreadable: the
    /// channel is then pending a retry.
    async fn catch_up(&mut self, channel: &Channel, before: Option<u64>) -> Result<(), End> {
        let Some(sub) = self.link.follows.subs.get(channel) else {
            self.link.follows.pending_resync.remove(channel);
            return Ok(());
        };
        let conversation = sub.conversation.clone();
        let mut last = sub.last_seq;
        let cx = Ctx {
            node: &self.node,
            identity: &self.identity,
        };
        let result =
            ops::follow::write_history(&cx, &mut self.link, &conversation, &mut last, before).await;
        let follows = &mut self.link.follows;
        if let Some(sub) = follows.subs.get_mut(channel) {
            sub.last_seq = sub.last_seq.max(last);
        }
        match result {
            Ok(written) => {
                if written.count > 0 {
                    ::metrics::counter!(GAP_REPAIRS).increment(written.count);
                }
                follows.pending_resync.remove(channel);
                Ok(())
            }
            Err(Failure::Gone) => Err(End::Gone),
            Err(Failure::Reply(_)) => {
                follows.pending_resync.insert(channel.clone());
                Ok(())
            }
        }
    }
}

/// What to do with a live envelope, given the subscription's last `seq` (`None`: its
/// channel is not a followed conversation), whether that conversation awaits a catch-up,
/// whether the channel is one of the session's fixed ones, and the envelope's `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Not for this client (not followed, or already written).
    Skip,
    /// Write it now.
    Write,
    /// Events are missing before it: write them from history first.
    RepairFirst,
}

/// Decides one live envelope's fate (see [`Delivery`]): pure, so the ordering rules are
/// unit-tested without a socket.
pub(crate) fn delivery(
    last_seq: Option<u64>,
    pending_resync: bool,
    fixed: bool,
    seq: Option<u64>,
) -> Delivery {
    match (seq, last_seq) {
        (Some(_), None) => Delivery::Skip,
        (Some(seq), Some(last)) if seq <= last => Delivery::Skip,
        (Some(seq), Some(last)) if seq > last + 1 || pending_resync => Delivery::RepairFirst,
        (Some(_), Some(_)) => Delivery::Write,
        (None, Some(_)) => Delivery::Write,
        (None, None) if fixed => Delivery::Write,
        (None, None) => Delivery::Skip,
    }
}

impl<K: Backend, W: Socket> Link<K, W> {
    /// Feeds one shared envelope in this session's encoding (JSON made once per node).
    async fn write_envelope(&mut self, envelope: &Envelope) -> Result<(), End> {
        let message = match self.codec {
            Codec::MsgPack => Message::Binary(envelope.msgpack.clone()),
            Codec::Json => {
                let json = envelope.json(transcode_to_json).clone();
                if json.is_empty() {
                    return Ok(());
                }
                match Utf8Bytes::try_from(json) {
                    Ok(text) => Message::Text(text),
                    Err(_) => return Ok(()),
                }
            }
        };
        self.node.hot.frames_out.increment(1);
        self.node
            .hot
            .fanout_latency
            .record(envelope.received.elapsed().as_secs_f64());
        self.ws.feed(message).await.map_err(|_| End::Gone)
    }

    /// Feeds one frame made for this session only (replays), without flushing.
    async fn feed_frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        let message = self
            .encode(frame)
            .ok_or(End::Close(CloseCode::InternalError))?;
        self.node.hot.frames_out.increment(1);
        let write_timeout = self.node.config.write_timeout;
        match tokio::time::timeout(write_timeout, self.ws.feed(message)).await {
            Ok(result) => result.map_err(|_| End::Gone),
            Err(_) => Err(End::Close(CloseCode::SlowConsumer)),
        }
    }

    fn encode(&self, frame: &ServerFrame) -> Option<Message> {
        let bytes = match self.codec.encode_server(frame) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode frame");
                return None;
            }
        };
        Some(if self.codec.is_binary() {
            Message::Binary(bytes)
        } else {
            Message::Text(Utf8Bytes::try_from(bytes).ok()?)
        })
    }

    /// Sends a reply now. A reply that would not fit the socket's outbound budget (an
    /// answer too large for this socket) is replaced by `too_large` for the same request:
    /// a legitimate request never kills its socket.
    async fn send_reply(&mut self, reply: ServerFrame) -> Result<(), WsError> {
        let Some(message) = self.encode(&reply) else {
            return Ok(());
        };
        let budget = self.node.config.limits.outbox_bytes;
        let message = if message.len() > budget {
            let id = match &reply {
                ServerFrame::Ok { id, .. } => Some(*id),
                ServerFrame::Err(e) => e.id,
                _ => None,
            };
            let refusal = ErrorFrame::new(
                id,
                ErrorCode::TooLarge,
                format!(
                    "the answer is {} bytes, more than this socket receives ({budget}); narrow the request",
                    message.len()
                ),
            );
            match self.encode(&ServerFrame::Err(refusal)) {
                Some(m) => m,
                None => return Ok(()),
            }
        } else {
            message
        };
        self.send_message(message).await
    }

    /// Sends one frame now (flushing everything fed before it).
    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), WsError> {
        let Some(message) = self.encode(frame) else {
            return Ok(());
        };
        self.send_message(message).await
    }

    /// Sends one encoded message now, within the write timeout.
    async fn send_message(&mut self, message: Message) -> Result<(), WsError> {
        self.node.hot.frames_out.increment(1);
        let write_timeout = self.node.config.write_timeout;
        match tokio::time::timeout(write_timeout, self.ws.send(message)).await {
            Ok(result) => result,
            Err(_) => Err(WsError::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }

    async fn leave_all(&mut self) {
        let channels: Vec<Channel> = self
            .follows
            .subs
            .drain()
            .map(|(c, _)| c)
            .chain(self.fixed.drain(..))
            .collect();
        for channel in channels {
            Connection::leave(self, &channel).await;
        }
    }

    /// Sends the close frame, then reads until the client answers it (or the grace ends),
    /// so the client reads the code instead of meeting a reset connection.
    async fn close(&mut self, code: CloseCode) {
        let frame = CloseFrame {
            code: code.code().into(),
            reason: Utf8Bytes::from_static(code.reason()),
        };
        let grace = self.node.config.shutdown_grace.min(Duration::from_secs(5));
        let sent = tokio::time::timeout(grace, self.ws.send(Message::Close(Some(frame)))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
        if matches!(code, CloseCode::ProtocolError | CloseCode::InvalidData) {
            // The stream cannot be trusted any more: drop it after the close frame.
            return;
        }
        if code == CloseCode::TooBig {
            // The rest of the oversized message is still arriving and cannot be parsed as
            // frames; read it raw and throw it away until the client closes.
            let _ = tokio::time::timeout(grace, self.ws.discard_rest(64 * 1024 * 1024)).await;
            return;
        }
        let _ = tokio::time::timeout(grace, async {
            while let Some(Ok(message)) = self.ws.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

impl<K: Backend, W: Socket> Connection for Link<K, W> {
    fn session_key(&self) -> &str {
        &self.key
    }

    fn follows(&mut self) -> &mut Follows {
        &mut self.follows
    }

    fn presence(&mut self) -> &mut Presence {
        &mut self.presence
    }

    async fn join(&mut self, channel: &Channel) -> Result<(), chathub_broker::BrokerError> {
        if self.node.hub.join(channel, self.id, &self.outbox_tx)
            && let Err(e) = self.node.backend.broker().subscribe(channel).await
        {
            self.node.hub.leave(channel, self.id);
            return Err(e);
        }
        Ok(())
    }

    async fn leave(&mut self, channel: &Channel) {
        if self.node.hub.leave(channel, self.id)
            && let Err(e) = self.node.backend.broker().unsubscribe(channel).await
        {
            tracing::warn!(error = %e, %channel, "unsubscribe failed");
        }
    }

    async fn feed(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        self.feed_frame(frame).await.map_err(|_| Gone)
    }
}

/// Whether a protocol "error" only says the peer went away (reset without a close
/// handshake): nothing to tell it then.
fn is_peer_gone(e: &tokio_tungstenite::tungstenite::error::ProtocolError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    matches!(
        e,
        P::ResetWithoutClosingHandshake | P::SendAfterClosing | P::ReceivedAfterClosing
    )
}

/// The JSON encoding of a MessagePack frame (once per node per event: see [`Envelope`]).
fn transcode_to_json(msgpack: &[u8]) -> Bytes {
    Codec::MsgPack
        .decode_server(msgpack)
        .ok()
        .and_then(|frame| Codec::Json.encode_server(&frame).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsConfig;

    /// A bot is told every change of its tenant's queue: a wave of 2,000 conversations
    /// opened at once fits its outbox, where it would close an agent's as a slow consumer.
    #[test]
    fn a_bots_outbox_holds_a_tenants_wave_an_agents_does_not() {
        let limits = LimitsConfig::default();
        let wave = |role: chathub_domain::Role| {
            let (frames, bytes) = limits.outbox_of(role);
            let (tx, _rx) = outbox::channel(frames, bytes);
            let channel =
                chathub_broker::Channel::agents(&chathub_domain::TenantId::new("t").unwrap());
            (0..2_000).all(|_| {
                let queue_frame = bytes::Bytes::from(vec![0u8; 200]);
                tx.try_push(Arc::new(chathub_broker::Envelope::new(
                    channel.clone(),
                    None,
                    queue_frame,
                )))
                .is_ok()
            })
        };
        assert!(wave(chathub_domain::Role::Bot), "a bot's outbox overflowed");
        assert!(
            !wave(chathub_domain::Role::Agent),
            "an agent's outbox is not bounded"
        );
    }

    #[test]
    fn live_events_continue_the_sequence_exactly() {
        // Not followed: skipped, whatever it is.
        assert_eq!(delivery(None, false, false, Some(3)), Delivery::Skip);
        assert_eq!(delivery(None, false, false, None), Delivery::Skip);
        // Already written (a replay got there first): skipped.
        assert_eq!(delivery(Some(5), false, false, Some(5)), Delivery::Skip);
        assert_eq!(delivery(Some(5), false, false, Some(2)), Delivery::Skip);
        // The next one: written.
        assert_eq!(delivery(Some(5), false, false, Some(6)), Delivery::Write);
        // A gap: repaired from history first.
        assert_eq!(
            delivery(Some(5), false, false, Some(8)),
            Delivery::RepairFirst
        );
        // A catch-up pending: even the next one waits for it.
        assert_eq!(
            delivery(Some(5), true, false, Some(6)),
            Delivery::RepairFirst
        );
        // Frames outside the sequence: for followed and fixed channels only.
        assert_eq!(delivery(Some(5), false, false, None), Delivery::Write);
        assert_eq!(delivery(None, false, true, None), Delivery::Write);
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate_then_calls_abuse() {
        let limits = LimitsConfig {
            rate_per_sec: 10,
            rate_burst: 5,
            abuse_limit: 3,
            ..LimitsConfig::default()
        };
        let mut bucket = RateBucket::new(&limits, Role::Agent);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        assert_eq!(bucket.take(t0), Err(false));
        // 100 ms later one token has come back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(bucket.take(t1), Ok(()));
        assert_eq!(bucket.take(t1), Err(false));
        assert_eq!(bucket.take(t1), Err(false));
        assert_eq!(
            bucket.take(t1),
            Err(true),
            "the fourth refusal in the window is abuse"
        );
        // A new window forgives.
        let t2 = t1 + ABUSE_WINDOW + Duration::from_millis(1);
        let _ = bucket.take(t2);
        for _ in 0..20 {
            let _ = bucket.take(t2);
        }
        assert_eq!(bucket.take(t2), Err(true));
    }
}

#[cfg(test)]
mod footprint {
    // Test set-up: unwrap is how a test says "this must hold".
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::LimitsConfig;
    use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

    /// A node, an end user's identity and the server side of a real WebSocket (with the
    /// client's TCP end, to keep it open).
    async fn an_accepted_socket() -> (
        Arc<Node<crate::EmbeddedBackend>>,
        Identity,
        WebSocketStream<crate::tls::Transport>,
        tokio::net::TcpStream,
    ) {
        let node = super::over_channels::node(LimitsConfig::default());
        let token = node
            .auth
            .mint("t", "u1", chathub_domain::Role::EndUser, None, 600)
            .unwrap();
        let identity = node.auth.verify(&token).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let ((server, _), client) = tokio::try_join!(listener.accept(), client).unwrap();
        let ws = WebSocketStream::from_raw_socket(
            crate::tls::Transport::Plain(server),
            WsRole::Server,
            None,
        )
        .await;
        (node, identity, ws, client)
    }

    /// Every idle socket keeps the `serve` future for its whole life, so its size is
    /// memory per socket: whatever is not the steady loop must run boxed (see `run`).
    /// An unboxed request or replay future inside it would multiply this several times.
    #[tokio::test]
    async fn the_steady_loop_of_an_idle_socket_stays_small() {
        let (node, identity, ws, _client) = an_accepted_socket().await;
        let (outbox_tx, outbox) = outbox::channel(8, 1 << 16);
        let mut session = Session {
            bucket: RateBucket::new(&node.config.limits, identity.role),
            fence: crate::alerts::AlertFence::default(),
            link: Link {
                node: node.clone(),
                ws,
                id: 1,
                key: "test-1".into(),
                codec: Codec::Json,
                outbox_tx,
                follows: Follows::default(),
                fixed: Vec::new(),
                presence: Presence::Available,
            },
            node,
            identity,
        };
        // 464 bytes in release when this was written (616 with a `Sleep` per deadline and
        // the write timeout's inline, 640 before the lighter outbox); an unboxed request
        // future alone adds ~2 KB. Under 512, jemalloc's size class is 512 instead of 640.
        let size = std::mem::size_of_val(&session.serve(outbox));
        let bound = if cfg!(debug_assertions) { 1024 } else { 512 };
        assert!(size <= bound, "the serve future is {size} bytes");
    }

    /// The session's whole future (what its task keeps beside the boxed loop) holds the
    /// session once: built before the future, not from an `async fn`'s arguments, which
    /// would stay reserved beside it (1,200 bytes instead of ~700).
    #[tokio::test]
    async fn an_idle_socket_holds_its_session_once() {
        let (node, identity, ws, _client) = an_accepted_socket().await;
        let session = std::mem::size_of::<
            Session<crate::EmbeddedBackend, WebSocketStream<crate::tls::Transport>>,
        >();
        let task = std::mem::size_of_val(&run(node, ws, identity, Codec::Json));
        assert!(
            task < session + 200,
            "the session's future is {task} bytes for a {session}-byte session"
        );
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod over_channels;
