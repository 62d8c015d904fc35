//! Reading the few fields routing needs out of a published MessagePack frame without
//! decoding it: a walk over its top-level map that skips every value it does not need.
//!
//! A frame published on Redis is routed by its `seq` (ordering, gap detection) and a few
//! flags. Decoding the whole frame into its types and encoding it again on every node
//! costs more than everything else the node does with it; for the common frame, a plain
//! message event, the walk finds what routing needs and the bytes go out as they came.

use rmp::Marker;

/// The `seq` of a frame that is a plain `message` event, or `None` for any other frame
/// (and for bytes that are not one well-formed MessagePack map): those are decoded in
/// full. The whole map is walked, so truncated or trailing bytes are never passed on.
pub(crate) fn message_seq(payload: &[u8]) -> Option<u64> {
    let mut cursor = Cursor {
        bytes: payload,
        at: 0,
    };
    let fields = cursor.map_len()?;
    let (mut is_event, mut is_message, mut seq) = (false, false, None);
    for _ in 0..fields {
        let key = cursor.str()?;
        match key {
            b"type" => is_event = cursor.str()? == b"event",
            b"event" => is_message = cursor.str()? == b"message",
            b"seq" => seq = Some(cursor.uint()?),
            _ => cursor.skip()?,
        }
    }
    // Trailing bytes: not one frame.
    if cursor.at != payload.len() {
        return None;
    }
    (is_event && is_message).then_some(seq).flatten()
}

/// Most values one skipped value may hold (a frame is far smaller): bounds the walk
/// over hostile bytes.
const MAX_VALUES: usize = 1 << 16;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn marker(&mut self) -> Option<Marker> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(Marker::from_u8(byte))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    fn map_len(&mut self) -> Option<u64> {
        match self.marker()? {
            Marker::FixMap(n) => Some(u64::from(n)),
            Marker::Map16 => self.be(2),
            Marker::Map32 => self.be(4),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a [u8]> {
        let len = match self.marker()? {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 => self.be(1)?,
            Marker::Str16 => self.be(2)?,
            Marker::Str32 => self.be(4)?,
            _ => return None,
        };
        self.take(usize::try_from(len).ok()?)
    }

    fn uint(&mut self) -> Option<u64> {
        match self.marker()? {
            Marker::FixPos(n) => Some(u64::from(n)),
            Marker::U8 => self.be(1),
            Marker::U16 => self.be(2),
            Marker::U32 => self.be(4),
            Marker::U64 => self.be(8),
            _ => None,
        }
    }

    /// Skips one value, however nested (iteratively: no recursion on hostile input).
    fn skip(&mut self) -> Option<()> {
        let mut remaining: usize = 1;
        let mut seen = 0usize;
        while remaining > 0 {
            remaining -= 1;
            seen += 1;
            if seen > MAX_VALUES {
                return None;
            }
            let (bytes, items) = match self.marker()? {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => (0, 0),
                Marker::U8 | Marker::I8 => (1, 0),
                Marker::U16 | Marker::I16 => (2, 0),
                Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
                Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
                Marker::FixStr(n) => (u64::from(n), 0),
                Marker::Str8 | Marker::Bin8 => (self.be(1)?, 0),
                Marker::Str16 | Marker::Bin16 => (self.be(2)?, 0),
                Marker::Str32 | Marker::Bin32 => (self.be(4)?, 0),
                Marker::FixArray(n) => (0, u64::from(n)),
                Marker::Array16 => (0, self.be(2)?),
                Marker::Array32 => (0, self.be(4)?),
                Marker::FixMap(n) => (0, 2 * u64::from(n)),
                Marker::Map16 => (0, 2 * self.be(2)?),
                Marker::Map32 => (0, 2 * self.be(4)?),
                Marker::FixExt1 => (2, 0),
                Marker::FixExt2 => (3, 0),
                Marker::FixExt4 => (5, 0),
                Marker::FixExt8 => (9, 0),
                Marker::FixExt16 => (17, 0),
                Marker::Ext8 => (self.be(1)? + 1, 0),
                Marker::Ext16 => (self.be(2)? + 1, 0),
                Marker::Ext32 => (self.be(4)? + 1, 0),
                Marker::Reserved => return None,
            };
            self.take(usize::try_from(bytes).ok()?)?;
            remaining = remaining.checked_add(usize::try_from(items).ok()?)?;
            if remaining > MAX_VALUES {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathub_domain::{Author, ConversationId, Event, EventBody, MessageContent, Role};
    use chathub_protocol::{Codec, EventFrame, ServerFrame};

    fn frame(body: EventBody, seq: u64) -> Vec<u8> {
        let frame = ServerFrame::Event(EventFrame {
            conversation: ConversationId::new("u-1").unwrap(),
            event: Event {
                seq,
                at: 1_764_072_000_000,
                body,
                amended: None,
            },
        });
        Codec::MsgPack.encode_server(&frame).unwrap().to_vec()
    }

    fn message(text: &str) -> EventBody {
        EventBody::Message {
            author: Author {
                role: Role::EndUser,
                id: "u-1".into(),
            },
            content: MessageContent::Text { text: text.into() },
            client_msg_id: Some("c-1".into()),
        }
    }

    #[test]
    fn a_message_event_is_routed_by_its_seq_without_decoding() {
        assert_eq!(message_seq(&frame(message("hello"), 7)), Some(7));
        // Large seqs and long texts (str16 / str32, u32 / u64 markers).
        assert_eq!(
            message_seq(&frame(message(&"x".repeat(70_000)), 1 << 40)),
            Some(1 << 40)
        );
    }

    #[test]
    fn every_other_frame_is_left_to_the_full_decoder() {
        let note = EventBody::Note {
            author: Author {
                role: Role::Agent,
                id: "a-1".into(),
            },
            client_msg_id: None,
            text: "a private note".into(),
            mentions: Vec::new(),
        };
        assert_eq!(message_seq(&frame(note, 3)), None);
        let typing = Codec::MsgPack
            .encode_server(&ServerFrame::Typing(chathub_protocol::TypingFrame {
                conversation: ConversationId::new("u-1").unwrap(),
                from: Author {
                    role: Role::EndUser,
                    id: "u-1".into(),
                },
                typing: true,
            }))
            .unwrap();
        assert_eq!(message_seq(&typing), None);
    }

    #[test]
    fn malformed_bytes_are_refused_not_misread() {
        let good = frame(message("hello"), 7);
        // Cut short anywhere, or with bytes after the map: not a frame.
        for end in 0..good.len() {
            assert_eq!(message_seq(&good[..end]), None, "cut at {end}");
        }
        let mut longer = good.clone();
        longer.push(0xc0);
        assert_eq!(message_seq(&longer), None);
        // A huge declared length and deep nesting end the walk, they do not run it away.
        assert_eq!(
            message_seq(&[0x81, 0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        let mut deep = vec![0x81, 0xa1, b'x'];
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0xc0);
        assert_eq!(message_seq(&deep), None);
        assert_eq!(message_seq(&[0xc1]), None);
    }
}
