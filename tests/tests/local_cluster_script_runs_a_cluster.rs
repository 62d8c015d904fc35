//! `deploy/local-cluster.sh up` starts redis-server, three gateway nodes and haproxy on
//! loopback and prints their addresses; clients work through the balancer and through
//! every node as one hub; `down` stops exactly what `up` started.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{chathub_binary, dev_token, expect_frame, http_get};
use chathub_protocol::ServerFrame;
use std::process::Command;

fn script(args: &[&str], state: &std::path::Path) -> std::process::Output {
    Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/local-cluster.sh"
    ))
    .args(args)
    .env("CHATHUB_BIN", chathub_binary())
    .env("CHATHUB_STATE_DIR", state)
    .output()
    .expect("local-cluster.sh runs")
}

#[tokio::test]
async fn up_serves_through_the_balancer_and_down_stops_everything() {
    let state = std::env::temp_dir().join(format!("chathub-local-cluster-{}", std::process::id()));
    // Ports are fixed offsets from a base; try a few bases in case one is taken.
    let mut up = None;
    for attempt in 0..5 {
        let base = 20_000 + (std::process::id() % 300) * 100 + attempt * 30_000 % 9_000;
        let out = script(
            &["up", "--nodes", "3", "--base-port", &base.to_string()],
            &state,
        );
        if out.status.success() {
            up = Some(String::from_utf8(out.stdout).unwrap());
            break;
        }
        eprintln!("up failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = up.expect("local-cluster.sh up succeeds");
    let nodes: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("node "))
        .map(|l| {
            let (ws, http) = l.split_once(' ').unwrap();
            (ws.to_owned(), http.to_owned())
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{stdout}");
    let balancer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("balancer "))
        .expect("a balancer line")
        .to_owned();

    for (_, http) in &nodes {
        let addr = http.strip_prefix("http://").unwrap().parse().unwrap();
        assert_eq!(http_get(addr, "/readyz").await.0, 200);
    }
    // Through the balancer and directly on a node: one hub.
    let mut agent = Client::connect(&nodes[2].0, &dev_token("acme", Role::Agent, "alice"))
        .await
        .unwrap();
    let user = Client::connect(&balancer, &dev_token("acme", Role::EndUser, "u-1"))
        .await
        .unwrap();
    user.send_text(None, "hello through haproxy", None, None)
        .await
        .unwrap();
    expect_frame(&mut agent, "queue event from another node", |f| {
        matches!(f, ServerFrame::Queue(_))
    })
    .await;
    drop(agent);
    drop(user);

    let out = script(&["down"], &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listens any more.
    for (ws, _) in &nodes {
        assert!(
            Client::connect(ws, &dev_token("acme", Role::Agent, "x"))
                .await
                .is_err()
        );
    }
    assert!(
        Client::connect(&balancer, &dev_token("acme", Role::Agent, "x"))
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(&state);
}
