//! The satisfaction survey after a finish, and its loyalty reward. With the tenant's
//! survey set (admin API), every finish asks the end user it (`survey` event, seen by
//! both sides, live and in history); the end user answers once per cycle (a second
//! answer is `invalid_state`, an agent's is `forbidden`, a rating out of 1–5 is
//! `bad_request`); the answer is recorded with the cycle (stats, the cycles CSV, the
//! transcript). The reward (a catalogue item) is granted in the answer's atomic step
//! when the end user is entitled to it — recorded as received in their engagement
//! history, then redeemable — and refused with the reason when not (not in the
//! item's segment; once per user and already redeemed). An end user with no live
//! socket when the survey is asked gets it through the offline webhook
//! (`type: "survey"`, the question as its text).
//!
//! On the embedded default and on three nodes over a 3-master Redis Cluster with the
//! PostgreSQL archive (reports read the archive there).

use chathub_client::Client;
use chathub_domain::{Event, EventBody, Role};
use chathub_e2e::{Nodes, conv, dev_token, expect_frame, full_history, http_request};
use chathub_e2e::{Received, take_with, webhook_receiver};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame, SurveyAck};
use std::time::{Duration, Instant};

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(nodes.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

async fn api(nodes: &Nodes, method: &str, path: &str, body: &str) -> (u16, String) {
    let admin = dev_token("acme", Role::Admin, "carol");
    http_request(nodes.http(2), method, path, &admin, body).await
}

fn answer(rating: u8, comment: Option<&str>) -> Op {
    Op::SurveyAnswer {
        conversation: None,
        rating,
        comment: comment.map(str::to_owned),
    }
}

async fn answered(client: &Client, op: Op) -> Result<SurveyAck, ErrorCode> {
    match client.request(op).await {
        Ok(Reply::SurveyAnswer(ack)) => Ok(ack),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e.server().map(|e| e.code).unwrap_or(ErrorCode::Internal)),
    }
}

/// The end user writes, alice takes and finishes: the `survey` event the finish asked.
async fn finished_cycle(user: &mut Client, alice: &Client, who: &str, text: &str) -> Event {
    user.send_text(None, text, None, None).await.unwrap();
    let c = conv(who);
    let epoch = take_with(alice, who, "Hello, how can I help?").await;
    let finished = alice
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(epoch),
        })
        .await;
    assert!(finished.is_ok(), "{finished:?}");
    let frame = expect_frame(
        user,
        "the survey",
        |f| matches!(f, ServerFrame::Event(e) if matches!(e.event.body, EventBody::Survey { .. })),
    )
    .await;
    match frame {
        ServerFrame::Event(e) => e.event,
        _ => unreachable!(),
    }
}

async fn scenario(nodes: Nodes, hook: std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    // The catalogue's thank-you: gold members only, once each.
    let item = r#"{"id":"thanks-10","type":"coupon","name":"10% off, thank you","rules":{"segments":["gold"],"once_per_user":true}}"#;
    let (status, body) = api(&nodes, "PUT", "/admin/v1/catalogue/thanks-10", item).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &nodes,
        "PUT",
        "/admin/v1/users/ann/profile",
        r#"{"first_name":"Ann","segments":["gold"]}"#,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    // The survey's settings are checked: a question, and a reward of the catalogue.
    for bad in [
        r#"{"survey":{"prompt":"  "}}"#,
        r#"{"survey":{"prompt":"How did we do?","reward":"nope"}}"#,
        r#"{"survey":{"prompt":"How did we do?","bonus":1}}"#,
    ] {
        let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = api(
        &nodes,
        "PUT",
        "/admin/v1/settings",
        r#"{"survey":{"prompt":"How did we do?","reward":"thanks-10"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["survey"]["reward"], "thanks-10", "{body}");
    // The nodes' settings caches: another node may have read them before the change.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut ann = connect(&nodes, 0, Role::EndUser, "ann").await;
    let mut alice = connect(&nodes, 1, Role::Agent, "alice").await;
    ann.subscribe(None, None).await.unwrap();
    alice.subscribe(Some(&conv("ann")), None).await.unwrap();

    // No survey is open before a finish.
    assert_eq!(
        answered(&ann, answer(5, None)).await.err(),
        Some(ErrorCode::InvalidState)
    );
    let survey = finished_cycle(&mut ann, &alice, "ann", "my order is late").await;
    assert_eq!(
        survey.body,
        EventBody::Survey {
            prompt: "How did we do?".into()
        }
    );
    // The agents see it too.
    expect_frame(
        &mut alice,
        "the survey, for agents",
        |f| matches!(f, ServerFrame::Event(e) if e.event.seq == survey.seq),
    )
    .await;

    // Only the end user answers, with a rating of 1–5.
    let by_agent = alice
        .request(Op::SurveyAnswer {
            conversation: Some(conv("ann")),
            rating: 5,
            comment: None,
        })
        .await
        .expect_err("agents do not answer");
    assert_eq!(
        by_agent.server().map(|e| e.code),
        Some(ErrorCode::Forbidden)
    );
    for rating in [0, 6] {
        assert_eq!(
            answered(&ann, answer(rating, None)).await.err(),
            Some(ErrorCode::BadRequest)
        );
    }
    let ack = answered(&ann, answer(4, Some("quick, \"kind\" and =helpful")))
        .await
        .unwrap();
    let reward = ack.reward.clone().expect("ann is entitled to the reward");
    assert_eq!(
        (reward.id.as_str(), ack.reward_refused),
        ("thanks-10", None)
    );
    // The agent sees the answer.
    let frame = expect_frame(
        &mut alice,
        "the answer",
        |f| matches!(f, ServerFrame::Event(e) if e.event.seq == ack.seq),
    )
    .await;
    let ServerFrame::Event(e) = frame else {
        unreachable!()
    };
    match &e.event.body {
        EventBody::SurveyAnswered {
            survey: asked,
            rating,
            comment,
            reward,
            ..
        } => {
            assert_eq!((*asked, *rating), (survey.seq, 4));
            assert_eq!(comment.as_deref(), Some("quick, \"kind\" and =helpful"));
            assert_eq!(reward.as_ref().map(|r| r.id.as_str()), Some("thanks-10"));
        }
        other => panic!("not an answer: {other:?}"),
    }
    // One answer per cycle.
    assert_eq!(
        answered(&ann, answer(1, None)).await.err(),
        Some(ErrorCode::InvalidState)
    );
    // The reward is in ann's engagement history as received (on a cluster the queue's
    // slot writes it a moment after), and ann can redeem it.
    let start = Instant::now();
    loop {
        let Ok(Reply::EngagementHistory(page)) = alice
            .request(Op::EngagementHistory {
                conversation: Some(conv("ann")),
                engagement_type: None,
                before: None,
                limit: None,
            })
            .await
        else {
            panic!("engagement history answers")
        };
        let received = page.events.iter().filter(|e| {
            e.engagement.as_deref() == Some("thanks-10")
                && e.action == chathub_domain::engagement::HistoryAction::Received
        });
        match received.count() {
            1 => break,
            0 if start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            n => panic!("{n} received records: {page:?}"),
        }
    }
    let redeemed = ann
        .request(Op::Redeem {
            engagement: "thanks-10".into(),
        })
        .await;
    assert!(matches!(redeemed, Ok(Reply::Redeem(_))), "{redeemed:?}");

    // A new cycle asks again; ann redeemed the once-per-user reward: not granted.
    let second = finished_cycle(&mut ann, &alice, "ann", "one more thing").await;
    assert!(second.seq > ack.seq);
    let again = answered(&ann, answer(5, None)).await.unwrap();
    assert_eq!(
        (again.reward, again.reward_refused.as_deref()),
        (None, Some("already_redeemed"))
    );
    // Writing again closes an unanswered survey: its cycle is over.
    let _ = finished_cycle(&mut ann, &alice, "ann", "and another").await;
    ann.send_text(None, "sorry, forgot one", None, None)
        .await
        .unwrap();
    assert_eq!(
        answered(&ann, answer(3, None)).await.err(),
        Some(ErrorCode::InvalidState)
    );

    // bob is not gold: his answer is recorded, the reward refused with the reason.
    let mut bob = connect(&nodes, 2, Role::EndUser, "bob").await;
    bob.subscribe(None, None).await.unwrap();
    alice.subscribe(Some(&conv("bob")), None).await.unwrap();
    finished_cycle(&mut bob, &alice, "bob", "hello?").await;
    let bobs = answered(&bob, answer(2, None)).await.unwrap();
    assert_eq!(
        (bobs.reward, bobs.reward_refused.as_deref()),
        (None, Some("not_in_segment"))
    );

    // History shows the surveys and answers to both sides, and a fresh reader agrees.
    let history = full_history(&ann, "ann").await;
    let kinds = |events: &[Event]| {
        events
            .iter()
            .filter(|e| {
                matches!(
                    e.body,
                    EventBody::Survey { .. } | EventBody::SurveyAnswered { .. }
                )
            })
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(&history).len(),
        5,
        "3 surveys, 2 answers: {history:?}"
    );
    let agents_view = full_history(&alice, "ann").await;
    assert_eq!(kinds(&history), kinds(&agents_view));

    // Reports: the ratings, from the record tier (the archive a moment later).
    let start = Instant::now();
    let stats = loop {
        let Ok(Reply::Stats(stats)) = alice
            .request(Op::Stats {
                from: None,
                to: None,
            })
            .await
        else {
            panic!("stats answers")
        };
        if stats.ratings.iter().sum::<u64>() >= 3 || start.elapsed() > Duration::from_secs(10) {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats.ratings, [0, 1, 0, 1, 1], "{stats:?}");
    let (status, csv) = api(
        &nodes,
        "GET",
        "/admin/v1/reports/cycles.csv?from=2020-01-01",
        "",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",rating,comment,reward"),
        "{csv}"
    );
    // The comment is quoted, and cannot start a spreadsheet formula.
    assert!(
        csv.contains(",4,\"quick, \"\"kind\"\" and =helpful\",thanks-10\n"),
        "{csv}"
    );
    assert!(csv.contains(",5,,\n") && csv.contains(",2,,\n"), "{csv}");

    // The transcript shows the surveys and their answers.
    let Ok(Reply::Transcript(transcript)) = ann
        .request(Op::Transcript {
            conversation: None,
            format: Some("text".into()),
        })
        .await
    else {
        panic!("transcript answers")
    };
    assert_eq!(transcript.surveys.len(), 3, "{:?}", transcript.surveys);
    assert_eq!(transcript.surveys[0].rating, Some(4));
    assert_eq!(transcript.surveys[2].rating, None);
    assert!(
        transcript
            .engagements
            .iter()
            .any(|e| e.action == "granted" && e.id == "thanks-10")
    );
    let rendered = transcript.rendered.unwrap_or_default();
    assert!(
        rendered.contains("the end user rated 4/5: quick")
            && rendered.contains("survey asked: How did we do?"),
        "{rendered}"
    );

    // dee left the app: the survey reaches her phone through the webhook.
    let dee = connect(&nodes, 0, Role::EndUser, "dee").await;
    dee.send_text(None, "quick question", None, None)
        .await
        .unwrap();
    dee.close().await;
    let epoch = take_with(&alice, "dee", "answered by mail").await;
    let finished = alice
        .request(Op::Finish {
            conversation: Some(conv("dee")),
            epoch: Some(epoch),
        })
        .await;
    assert!(finished.is_ok(), "{finished:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pushes: Vec<serde_json::Value> = hook
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.1).ok())
            .collect();
        if let Some(push) = pushes.iter().find(|p| p["type"] == "survey") {
            assert_eq!(push["conversation"], "dee", "{push}");
            assert_eq!(push["content"]["text"], "How did we do?", "{push}");
            assert!(push.get("author").is_none(), "{push}");
            break;
        }
        assert!(Instant::now() < deadline, "no survey push: {pushes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The survey switched off: a finish asks nothing.
    let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", r#"{"survey":null}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"survey\""), "{body}");
    let (status, audit) = api(&nodes, "GET", "/admin/v1/audit", "").await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains("survey_set"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_rewards_an_answer_on_the_embedded_default() {
    let (url, hook) = webhook_receiver(0).await;
    let flags = [
        "--webhook-url",
        &url,
        "--webhook-secret",
        "webhook-secret-0123",
    ];
    scenario(Nodes::embedded(&flags), hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_rewards_an_answer_on_a_cluster() {
    let (url, hook) = webhook_receiver(0).await;
    let flags = [
        "--webhook-url",
        &url,
        "--webhook-secret",
        "webhook-secret-0123",
    ];
    scenario(Nodes::cluster_with_archive(3, &flags), hook).await;
}
