//! `/metrics` reports what operators watch: connections by role, frames in and out,
//! deliveries, the fan-out latency histogram, takes won and lost, resumes with and without
//! a gap, and how long conversations waited in the queue before the first agent reply.

use chathub_client::ClientError;
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, http_get};
use chathub_protocol::ErrorCode;

/// The value of the sample whose line starts with `series` (name and labels as
/// rendered), or panics with the whole body.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{body}"))
}

/// Whether a sample of `name` with all of `labels` exists (label order is the
/// exporter's).
fn has(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let ok =
            series.starts_with(&format!("{name}{{")) && labels.iter().all(|x| series.contains(x));
        ok.then(|| value.parse::<f64>().ok()).flatten()
    })
}

#[tokio::test]
async fn traffic_and_domain_metrics() {
    let hub = TestHub::start().await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    let alice = hub.connect(Role::Agent, "alice").await;
    let bob = hub.connect(Role::Agent, "bob").await;
    let c = conv("u-1");
    user.subscribe(None, None).await.unwrap();
    user.send_text(None, "hello", None, Some("m1"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    // A race: alice takes it, bob's stale send loses.
    alice
        .send_text(Some(&c), "hi", Some(0), None)
        .await
        .unwrap();
    match bob.send_text(Some(&c), "me too", Some(0), None).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Conflict),
        other => panic!("expected conflict, got {other:?}"),
    }
    // Resumes: one from the start (a gap: 4 events missed), one already up to date.
    let again = hub.connect(Role::EndUser, "u-1").await;
    let resumed = again.subscribe(None, Some(0)).await.unwrap();
    assert!(resumed.replayed > 0);
    let up_to_date = again
        .subscribe(None, Some(resumed.view.state.seq))
        .await
        .unwrap();
    assert_eq!(up_to_date.replayed, 0);

    // The wait is observed off the reply path: poll for it.
    let mut body = String::new();
    for _ in 0..100 {
        body = http_get(hub.http_addr, "/metrics").await.1;
        if body.contains("chathub_first_reply_seconds_count") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        has(&body, "chathub_connections", &["role=\"agent\""]),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        has(&body, "chathub_connections", &["role=\"end_user\""]),
        Some(2.0)
    );
    assert!(sample(&body, "chathub_frames_in_total") >= 6.0);
    assert!(sample(&body, "chathub_frames_out_total") >= 6.0);
    assert!(sample(&body, "chathub_hub_deliveries_total") >= 3.0);
    assert!(sample(&body, "chathub_fanout_latency_seconds_count") >= 3.0);
    assert!(body.contains("chathub_fanout_latency_seconds_bucket{le=\"0.001\"}"));
    assert_eq!(
        has(
            &body,
            "chathub_takes_total",
            &["outcome=\"won\"", "kind=\"taken\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        has(&body, "chathub_takes_total", &["outcome=\"lost\""]),
        Some(1.0)
    );
    assert_eq!(
        has(&body, "chathub_resumes_total", &["outcome=\"gap\""]),
        Some(1.0)
    );
    assert_eq!(
        has(&body, "chathub_resumes_total", &["outcome=\"no_gap\""]),
        Some(1.0)
    );
    assert_eq!(sample(&body, "chathub_first_reply_seconds_count"), 1.0);
    let waited = sample(&body, "chathub_first_reply_seconds_sum");
    assert!((0.04..30.0).contains(&waited), "waited {waited} s");
    assert_eq!(
        has(
            &body,
            "chathub_unanswered_wait_seconds_count",
            &["outcome=\"taken\""]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&body, "chathub_ready"), 1.0);
}
