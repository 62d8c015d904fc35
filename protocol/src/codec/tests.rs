//! Codec tests: the committed test vectors (JSON and MessagePack bytes of the same values),
//! every JSON example in PROTOCOL.md, and classification of bad frames.

use super::*;
use crate::server::ServerFrame;
use serde_json::Value;

const VECTORS: &str = include_str!("../../vectors/vectors.json");
const MSGPACK_VECTORS: &str = include_str!("../../vectors/vectors.msgpack.hex");
const PROTOCOL_MD: &str = include_str!("../../PROTOCOL.md");

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    direction: String,
    json: Value,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(VECTORS).expect("vectors.json parses")
}

/// The MessagePack encoding of a vector's value, as hex.
fn msgpack_hex(v: &Vector) -> String {
    let bytes = match v.direction.as_str() {
        "client" => {
            let r: Request = serde_json::from_value(v.json.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            Codec::MsgPack.encode_request(&r).unwrap()
        }
        _ => {
            let f: ServerFrame = serde_json::from_value(v.json.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            Codec::MsgPack.encode_server(&f).unwrap()
        }
    };
    hex::encode(bytes)
}

#[test]
fn vectors_round_trip_through_both_codecs() {
    let expected: Vec<&str> = MSGPACK_VECTORS.lines().collect();
    let vectors = vectors();
    assert_eq!(expected.len(), vectors.len(), "one hex line per vector");
    for (v, line) in vectors.iter().zip(expected) {
        let (name, hex_bytes) = line.split_once(' ').expect("`name-index hex` lines");
        let bytes = hex::decode(hex_bytes).unwrap();
        assert!(!name.is_empty());
        // MessagePack bytes decode to the same value as the JSON, and re-encode identically.
        assert_eq!(msgpack_hex(v), hex_bytes, "{}: msgpack bytes", v.name);
        let json_bytes = serde_json::to_vec(&v.json).unwrap();
        match v.direction.as_str() {
            "client" => {
                let from_json = Codec::Json.decode_request(&json_bytes).unwrap();
                let from_msgpack = Codec::MsgPack.decode_request(&bytes).unwrap();
                assert_eq!(from_json, from_msgpack, "{}", v.name);
                let back: Value =
                    serde_json::from_slice(&Codec::Json.encode_request(&from_msgpack).unwrap())
                        .unwrap();
                assert_eq!(back, v.json, "{}: json re-encoding", v.name);
            }
            _ => {
                let from_json = Codec::Json.decode_server(&json_bytes).unwrap();
                let from_msgpack = Codec::MsgPack.decode_server(&bytes).unwrap();
                assert_eq!(from_json, from_msgpack, "{}", v.name);
                let back: Value =
                    serde_json::from_slice(&Codec::Json.encode_server(&from_msgpack).unwrap())
                        .unwrap();
                assert_eq!(
                    strip_nulls(back),
                    strip_nulls(v.json.clone()),
                    "{}: json re-encoding",
                    v.name
                );
            }
        }
    }
}

/// `owner: null` and an absent optional field mean the same; compare without nulls.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Rewrites `vectors.msgpack.hex` from `vectors.json`. Run by hand after adding a vector:
/// `cargo test -p chathub-protocol -- --ignored write_msgpack_vectors`.
#[test]
#[ignore]
fn write_msgpack_vectors() {
    let out: String = vectors()
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}-{} {}\n", v.direction, i, msgpack_hex(v)))
        .collect();
    std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/vectors.msgpack.hex"),
        out,
    )
    .unwrap();
}

#[test]
fn every_json_example_in_protocol_md_is_a_valid_frame() {
    let mut checked = 0;
    let mut rest = PROTOCOL_MD;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed code block");
        for line in body[..end]
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
        {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("PROTOCOL.md example is not JSON: {line}: {e}"));
            let bytes = line.as_bytes();
            // Decode, re-encode and compare: a misspelt field would be silently ignored
            // by the decoder, but not survive the round trip.
            // Requests always carry `op` at the top; server frames never do.
            let again = if value.get("op").is_none() {
                let frame = Codec::Json
                    .decode_server(bytes)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md server example {line}: {e}"));
                Codec::Json.encode_server(&frame).unwrap()
            } else {
                let request = Codec::Json
                    .decode_request(bytes)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md request example {line}: {e}"));
                Codec::Json.encode_request(&request).unwrap()
            };
            let again: Value = serde_json::from_slice(&again).unwrap();
            assert_eq!(
                strip_nulls(again),
                strip_nulls(value),
                "PROTOCOL.md example does not round-trip: {line}"
            );
            checked += 1;
        }
        rest = &body[end + 3..];
    }
    assert!(
        checked >= 30,
        "only {checked} examples found in PROTOCOL.md"
    );
}

#[test]
fn bad_frames_are_classified_with_their_id() {
    let e = Codec::Json.decode_request(b"{not json").unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::Malformed, None));
    let e = Codec::Json.decode_request(b"[1,2]").unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Malformed);
    let e = Codec::Json.decode_request(br#"{"id":4}"#).unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::MissingOp, Some(4)));
    let e = Codec::Json
        .decode_request(br#"{"id":5,"op":"explode"}"#)
        .unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::UnknownOp, Some(5)));
    // A missing required field (`finish`'s conversation is checked by the op instead, so
    // that end users are told `forbidden` first).
    let e = Codec::Json
        .decode_request(br#"{"id":6,"op":"list"}"#)
        .unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::BadField, Some(6)));
    assert!(e.detail.contains("status"), "{}", e.detail);
    let e = Codec::Json
        .decode_request(br#"{"id":7,"op":"send","text":5}"#)
        .unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::BadField, Some(7)));
    let e = Codec::Json.decode_request(br#"{"op":"ping"}"#).unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::BadField, None));
    let e = Codec::Json
        .decode_request(br#"{"id":8,"op":"open","conversation":"bad id!"}"#)
        .unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::BadField, Some(8)));
    let e = Codec::MsgPack.decode_request(&[0xc1, 0x00]).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Malformed);
    let unknown = Codec::MsgPack
        .encode(&serde_json::json!({"id": 9, "op": "nope"}))
        .unwrap();
    let e = Codec::MsgPack.decode_request(&unknown).unwrap_err();
    assert_eq!((e.kind, e.id), (DecodeErrorKind::UnknownOp, Some(9)));
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let r = Codec::Json
        .decode_request(br#"{"id":1,"op":"ping","future":true}"#)
        .unwrap();
    assert_eq!(r.op, Op::Ping {});
}
