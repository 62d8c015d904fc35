//! The chathub wire protocol: the frames clients and servers exchange, and their two
//! encodings. `PROTOCOL.md` beside this crate is the contract for client authors; the
//! types here are its executable form. No I/O, no async runtime.
//!
//! # Layout
//! - [`request`]: what a client sends (`{"id": 1, "op": "send", …}`).
//! - [`server`]: what a server sends: replies (`ok` / `err`), pushed events, queue
//!   updates, typing and read notices, and the `welcome` frame.
//! - [`error`]: the closed list of error codes and WebSocket close codes.
//! - [`codec`]: the two subprotocols, `chathub.v1.msgpack` and `chathub.v1.json`.

pub mod codec;
pub mod error;
pub mod request;
pub mod server;

pub use codec::{Codec, DecodeError, DecodeErrorKind, EncodeError};
pub use error::{CloseCode, ErrorCode};
pub use request::{Op, Request, Visibility};
pub use server::*;
