//! Local fan-out: one event (encoded once) pushed to 1,000 sessions' outboxes.

#![allow(missing_docs)]

use bytes::Bytes;
use chathub_broker::{Channel, Envelope, Hub, outbox};
use chathub_domain::{ConversationId, TenantId};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let hub = Hub::new();
    let channel = Channel::conversation(
        &TenantId::new("t").expect("valid id"),
        &ConversationId::new("c").expect("valid id"),
    );
    let mut receivers = Vec::new();
    for session in 0..1_000 {
        let (tx, rx) = outbox::channel(1 << 16, usize::MAX);
        hub.join(&channel, session, &tx);
        receivers.push(rx);
    }
    let envelope = Arc::new(Envelope::new(
        channel.clone(),
        Some(1),
        Bytes::from(vec![0u8; 200]),
    ));
    c.bench_function("dispatch one event to 1000 outboxes", |b| {
        b.iter(|| {
            let n = hub.dispatch(&channel, &envelope);
            // Keep the queues from filling up: drain what was just pushed.
            for rx in receivers.iter_mut() {
                let _ = rx.try_recv();
            }
            n
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
