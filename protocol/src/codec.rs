//! The two encodings of the same schema, one per WebSocket subprotocol.

use crate::request::{Op, Request};
use crate::server::ServerFrame;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A wire encoding, chosen per connection by the WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// `chathub.v1.msgpack`: binary frames, MessagePack maps with named fields.
    MsgPack,
    /// `chathub.v1.json`: text frames, JSON objects.
    Json,
}

/// Why a frame could not be decoded into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Not a JSON / MessagePack map at all.
    Malformed,
    /// A map, but without a usable `op`.
    MissingOp,
    /// An `op` this server does not know.
    UnknownOp,
    /// A known `op` with a missing or ill-typed field.
    BadField,
}

/// A request that could not be decoded: what kind of problem, the request `id` if one
/// could be read, and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DecodeError {
    /// Kind of problem.
    pub kind: DecodeErrorKind,
    /// The request's id, if readable.
    pub id: Option<u64>,
    /// What was wrong.
    pub detail: String,
}

/// A frame could not be encoded (a bug: every frame type is encodable).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// MessagePack encoding failed.
    #[error("msgpack encode: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
    /// JSON encoding failed.
    #[error("json encode: {0}")]
    Json(#[from] serde_json::Error),
}

/// Just enough of a request to classify a decode failure.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    op: Option<String>,
}

impl Codec {
    /// Subprotocol name of the MessagePack encoding.
    pub const MSGPACK_SUBPROTOCOL: &'static str = "chathub.v1.msgpack";
    /// Subprotocol name of the JSON encoding.
    pub const JSON_SUBPROTOCOL: &'static str = "chathub.v1.json";

    /// The codec of a subprotocol name, if it is one of ours.
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name.trim() {
            Self::MSGPACK_SUBPROTOCOL => Some(Codec::MsgPack),
            Self::JSON_SUBPROTOCOL => Some(Codec::Json),
            _ => None,
        }
    }

    /// The subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::MsgPack => Self::MSGPACK_SUBPROTOCOL,
            Codec::Json => Self::JSON_SUBPROTOCOL,
        }
    }

    /// Whether frames of this codec travel as binary (else text) WebSocket messages.
    pub fn is_binary(self) -> bool {
        matches!(self, Codec::MsgPack)
    }

    /// Encodes any serialisable value (a frame) in this codec.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Bytes, EncodeError> {
        Ok(match self {
            Codec::MsgPack => Bytes::from(rmp_serde::to_vec_named(value)?),
            Codec::Json => Bytes::from(serde_json::to_vec(value)?),
        })
    }

    /// Encodes a server frame.
    pub fn encode_server(self, frame: &ServerFrame) -> Result<Bytes, EncodeError> {
        self.encode(frame)
    }

    /// Decodes a server frame (used by clients).
    pub fn decode_server(self, bytes: &[u8]) -> Result<ServerFrame, String> {
        match self {
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }

    /// Decodes a client request, classifying failures so the server can answer with the
    /// right error code and the request's id.
    pub fn decode_request(self, bytes: &[u8]) -> Result<Request, DecodeError> {
        let full = match self {
            Codec::MsgPack => rmp_serde::from_slice::<Request>(bytes).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice::<Request>(bytes).map_err(|e| e.to_string()),
        };
        let detail = match full {
            Ok(request) => return Ok(request),
            Err(detail) => detail,
        };
        // The slow path runs only for bad frames: decode again, leniently, to find out
        // what is wrong and which request it was.
        let probe = match self {
            Codec::MsgPack => rmp_serde::from_slice::<Probe>(bytes).ok(),
            Codec::Json => serde_json::from_slice::<Probe>(bytes).ok(),
        };
        let Some(probe) = probe else {
            return Err(DecodeError {
                kind: DecodeErrorKind::Malformed,
                id: None,
                detail: format!("not a request object: {detail}"),
            });
        };
        let (kind, detail) = match probe.op.as_deref() {
            None => (DecodeErrorKind::MissingOp, "missing field `op`".to_owned()),
            Some(op) if !Op::NAMES.contains(&op) => {
                (DecodeErrorKind::UnknownOp, format!("unknown op `{op}`"))
            }
            Some(_) if probe.id.is_none() => {
                (DecodeErrorKind::BadField, "missing field `id`".to_owned())
            }
            Some(_) => (DecodeErrorKind::BadField, detail),
        };
        Err(DecodeError {
            kind,
            id: probe.id,
            detail,
        })
    }

    /// Encodes a client request (used by clients).
    pub fn encode_request(self, request: &Request) -> Result<Bytes, EncodeError> {
        self.encode(request)
    }
}

#[cfg(test)]
mod tests;
