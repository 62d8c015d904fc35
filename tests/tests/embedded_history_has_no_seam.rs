//! With its data directory, an embedded node keeps only a window of each conversation in
//! memory (`--history-max-len`) and reads older events from the file: a client paging
//! back to the first message sees every event once, in order; a resume from a `seq`
//! older than the window replays everything after it, never `history_truncated`; and
//! after a restart the same holds.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{HubProcess, back_to_the_start, dev_token};
use chathub_protocol::ServerFrame;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_resuming_past_the_memory_window() {
    let data = chathub_testkit::ScratchDir::new("seam-data");
    let dir = data.path().to_str().expect("utf-8").to_owned();
    let args = ["--data-dir", dir.as_str(), "--history-max-len", "5"];
    let mut hub = HubProcess::spawn(&args);
    let token = dev_token("acme", Role::EndUser, "ann");
    let ann = Client::connect(&hub.ws_url, &token)
        .await
        .expect("connects");
    for n in 0..40 {
        ann.send_text(None, &format!("m{n}"), None, None)
            .await
            .expect("sent");
    }
    for round in ["running", "restarted"] {
        let mut reader = Client::connect(&hub.ws_url, &token)
            .await
            .expect("connects");
        let events = back_to_the_start(&reader, "ann", 7).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=41).collect::<Vec<_>>(),
            "{round}: every event once"
        );
        // A resume from far behind the window gets everything after it.
        let resumed = reader
            .resume(None, Some(3), Some(&reader.welcome().history_id.clone()))
            .await
            .expect("resumes");
        assert!(!resumed.history_truncated, "{round}");
        assert_eq!(resumed.replayed, 38, "{round}");
        let mut replayed = Vec::new();
        while let Some(frame) = reader.next_event_within(Duration::from_millis(500)).await {
            if let ServerFrame::Event(e) = frame {
                replayed.push(e.event.seq);
            }
        }
        assert_eq!(replayed, (4..=41).collect::<Vec<_>>(), "{round}");
        hub.kill9();
        hub = HubProcess::spawn(&args);
    }
}
