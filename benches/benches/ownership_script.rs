//! One ownership script round trip (an end user's message) against a real redis-server.

#![allow(missing_docs)]

use chathub_domain::{Actor, Command, ConversationId, EndUserId, MessageContent, TenantId};
use chathub_ownership::{ApplyRequest, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_store::RedisKeys;
use chathub_testkit::RedisServer;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conn = runtime
        .block_on(async {
            redis::Client::open(server.url())?
                .get_connection_manager()
                .await
        })
        .expect("redis connection");
    let ownership = RedisOwnership::new(
        conn,
        RedisKeys::new("bench"),
        RedisOwnershipConfig::default(),
    );
    let user = EndUserId::new("u-1").expect("valid id");
    let request = ApplyRequest {
        tenant: TenantId::new("t").expect("valid id"),
        conversation: ConversationId::of_end_user(&user),
        actor: Actor::EndUser(user),
        command: Command::Send {
            content: MessageContent::Text {
                text: "hello".into(),
            },
            client_msg_id: None,
            seen_epoch: None,
        },
        at: 1,
        context: Default::default(),
    };
    c.bench_function("apply script round trip (end user message)", |b| {
        b.iter(|| {
            runtime
                .block_on(ownership.apply(request.clone()))
                .expect("applied")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
