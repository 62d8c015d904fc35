//! The second peer of `compare.js`: socketioxide 0.18 with its Redis adapter, doing what
//! the run asks and nothing more (see socketio-server.js): each socket joins its
//! conversation's room; an end user's `send` is broadcast to the room's other sockets on
//! every node and acknowledged. Env: PORT (0: any), REDIS_URL. Prints `listening <port>`.

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide_redis::drivers::redis::redis_client as redis;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};

/// `tenant/conversation` from the handshake's query string.
fn room_of(query: &str) -> String {
    let field = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
            .to_owned()
    };
    format!("{}/{}", field("tenant"), field("conversation"))
}

async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    let room = room_of(socket.req_parts().uri.query().unwrap_or(""));
    socket.join(room.clone());
    socket.on(
        "send",
        move |s: SocketRef<A>, Data(message): Data<serde_json::Value>, ack: AckSender<A>| {
            let room = room.clone();
            async move {
                let _ = s.to(room).emit("message", &message).await;
                let _ = ack.send(&serde_json::json!({ "ok": true }));
            }
        },
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL")?;
    let client = redis::Client::open(format!("{url}?protocol=resp3"))?;
    let adapter = RedisAdapterCtr::new_with_redis(&client).await?;
    let (layer, io) = SocketIo::builder()
        .with_adapter::<RedisAdapter<_>>(adapter)
        .build_layer();
    io.ns("/", on_connect).await?;
    let app = axum::Router::new().layer(layer);
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    axum::serve(listener, app).await?;
    Ok(())
}
