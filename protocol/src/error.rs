//! Error codes (in `err` replies) and WebSocket close codes: closed, documented lists.

use serde::{Deserialize, Serialize};

/// Why a request failed. The list is closed: clients may match on every code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The token is missing, invalid or expired (only at the handshake, as HTTP 401).
    Unauthorized,
    /// The role or a privilege does not allow this, or the conversation is not yours.
    Forbidden,
    /// Lost a race: the ownership epoch moved. The reply names `owner` and `epoch`; the
    /// message was not delivered. Resend with the new epoch to take over deliberately.
    Conflict,
    /// Two-way chat is disabled for this conversation.
    ChatDisabled,
    /// The conversation does not exist.
    NotFound,
    /// The frame is malformed, or a field is missing or has the wrong type or value.
    BadRequest,
    /// The `op` is not one this server knows.
    UnknownOp,
    /// A field is too large (e.g. message text over the limit).
    TooLarge,
    /// Too many requests; slow down.
    RateLimited,
    /// The command does not apply in the conversation's current status.
    InvalidState,
    /// The backend is unreachable; retry later with the same `client_msg_id`.
    Unavailable,
    /// A server bug; retry later.
    Internal,
    /// The end user is not entitled to this engagement now (`reason` says why).
    NotEntitled,
    /// The engagement has expired.
    Expired,
    /// The engagement was redeemed already (once per user).
    AlreadyRedeemed,
    /// No stock left for this engagement.
    OutOfStock,
    /// The file's type is not accepted: unknown, not in the tenant's list, or not what
    /// its name or declared type says.
    UnsupportedType,
    /// The attachment scanner refused the file: it is never served or sent.
    Blocked,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ChatDisabled => "chat_disabled",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::NotEntitled => "not_entitled",
            ErrorCode::Expired => "expired",
            ErrorCode::AlreadyRedeemed => "already_redeemed",
            ErrorCode::OutOfStock => "out_of_stock",
            ErrorCode::UnsupportedType => "unsupported_type",
            ErrorCode::Blocked => "blocked",
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Internal
        )
    }
}

/// WebSocket close codes the server uses. 1xxx are the standard ones; 4000–4099 mean
/// "reconnect and resume"; 1008, 1009 and 4100–4199 mean "do not reconnect without fixing
/// something". The one table of codes, reasons and whether to reconnect is
/// `protocol/vectors/close_codes.json`, checked against this type and against the browser
/// client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: normal close (answer to the client's close).
    Normal,
    /// 1001: the server is shutting down; reconnect (to another node) and resume.
    GoingAway,
    /// 1002: the client broke the WebSocket protocol (reserved bits, a bad opcode, a
    /// fragmented control frame, …); the connection is dropped after the close frame.
    /// Fix the client before reconnecting.
    ProtocolError,
    /// 1007: a text frame was not UTF-8; the connection is dropped after the close frame.
    /// Fix the client before reconnecting.
    InvalidData,
    /// 1009: a frame or message exceeded the size limit; fix the client before
    /// reconnecting (at once it would resend the same message).
    TooBig,
    /// 1011: unexpected server error; reconnect and resume.
    InternalError,
    /// 4000: the client did not answer pings in time; reconnect and resume.
    KeepaliveTimeout,
    /// 4001: the client did not read fast enough and its outbound queue overflowed;
    /// reconnect and resume from the last `seq` it has.
    SlowConsumer,
    /// 1008: the token expired during the session, or the key that signed it was
    /// withdrawn (sessions are re-validated every ping interval); get a new token, then
    /// reconnect.
    TokenExpired,
    /// 1008 as well, when the key that signed the token is no longer accepted.
    TokenRevoked,
    /// 4101: the client kept breaking limits (rate, bad frames); do not reconnect at once.
    PolicyViolation,
    /// 4102: the end user's data was erased (an `erased` frame came just before): the
    /// device drops everything it holds of the conversation and does not resume.
    Erased,
}

impl CloseCode {
    /// Every close code, in the order of the table.
    pub const ALL: [CloseCode; 12] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::InvalidData,
        CloseCode::TokenExpired,
        CloseCode::TokenRevoked,
        CloseCode::TooBig,
        CloseCode::InternalError,
        CloseCode::KeepaliveTimeout,
        CloseCode::SlowConsumer,
        CloseCode::PolicyViolation,
        CloseCode::Erased,
    ];

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidData => 1007,
            CloseCode::TooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::KeepaliveTimeout => 4000,
            CloseCode::SlowConsumer => 4001,
            CloseCode::TokenExpired | CloseCode::TokenRevoked => 1008,
            CloseCode::PolicyViolation => 4101,
            CloseCode::Erased => 4102,
        }
    }

    /// The code's name in the table (`slow_consumer`).
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "going_away",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::InvalidData => "invalid_data",
            CloseCode::TooBig => "too_big",
            CloseCode::InternalError => "internal_error",
            CloseCode::KeepaliveTimeout => "keepalive_timeout",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::TokenRevoked => "token_revoked",
            CloseCode::PolicyViolation => "policy_violation",
            CloseCode::Erased => "erased",
        }
    }

    /// The short reason sent with the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::GoingAway => "server shutting down, reconnect",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::InvalidData => "text frame is not utf-8",
            CloseCode::TooBig => "message too big",
            CloseCode::InternalError => "internal error, reconnect",
            CloseCode::KeepaliveTimeout => "keepalive timeout, reconnect",
            CloseCode::SlowConsumer => "slow consumer, reconnect and resume",
            CloseCode::TokenExpired => "token expired",
            CloseCode::TokenRevoked => "token no longer valid",
            CloseCode::PolicyViolation => "policy violation",
            CloseCode::Erased => "your data was erased",
        }
    }

    /// Whether a client should reconnect (and resume) at once after this close.
    pub fn should_reconnect(self) -> bool {
        !matches!(
            self,
            CloseCode::Normal
                | CloseCode::ProtocolError
                | CloseCode::InvalidData
                | CloseCode::TokenExpired
                | CloseCode::TokenRevoked
                | CloseCode::TooBig
                | CloseCode::PolicyViolation
                | CloseCode::Erased
        )
    }
}

#[cfg(test)]
mod close_code_table {
    use super::CloseCode;

    /// The one table of close codes (also read by the browser client's tests).
    const TABLE: &str = include_str!("../vectors/close_codes.json");

    #[derive(serde::Deserialize)]
    struct Row {
        code: u16,
        name: String,
        reason: String,
        reconnect: bool,
    }

    #[test]
    fn the_close_codes_are_the_table() {
        let rows: Vec<Row> = serde_json::from_str(TABLE).expect("close_codes.json parses");
        assert_eq!(rows.len(), CloseCode::ALL.len(), "one row per close code");
        for (row, code) in rows.iter().zip(CloseCode::ALL) {
            assert_eq!(row.name, code.name());
            assert_eq!(row.code, code.code(), "{}", row.name);
            assert_eq!(row.reason, code.reason(), "{}", row.name);
            assert_eq!(row.reconnect, code.should_reconnect(), "{}", row.name);
        }
        // The ranges the document promises.
        for code in CloseCode::ALL {
            match code.code() {
                4000..=4099 => assert!(code.should_reconnect(), "{}", code.name()),
                4100..=4199 => assert!(!code.should_reconnect(), "{}", code.name()),
                _ => {}
            }
        }
    }
}
