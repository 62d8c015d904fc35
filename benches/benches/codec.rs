//! Encode and decode of a message event in both codecs.

#![allow(missing_docs)]

use chathub_domain::{Author, ConversationId, Event, EventBody, MessageContent, Role};
use chathub_protocol::{Codec, EventFrame, ServerFrame};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn frame() -> ServerFrame {
    ServerFrame::Event(EventFrame {
        conversation: ConversationId::new("u-42").expect("valid id"),
        event: Event {
            seq: 1234,
            at: 1_764_072_000_000,
            body: EventBody::Message {
                author: Author {
                    role: Role::EndUser,
                    id: "u-42".into(),
                },
                client_msg_id: Some("m-1234".into()),
                content: MessageContent::Text {
                    text: "Hello, my coupon does not work at checkout".into(),
                },
            },
            amended: None,
        },
    })
}

fn bench(c: &mut Criterion) {
    let f = frame();
    for codec in [Codec::MsgPack, Codec::Json] {
        let name = codec.subprotocol();
        c.bench_function(&format!("encode event {name}"), |b| {
            b.iter(|| codec.encode_server(black_box(&f)).expect("encodable"))
        });
        let bytes = codec.encode_server(&f).expect("encodable");
        c.bench_function(&format!("decode event {name}"), |b| {
            b.iter(|| codec.decode_server(black_box(&bytes)).expect("decodable"))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
