//! The admin API against its own OpenAPI document (`GET /admin/v1/openapi.json`):
//! schemathesis (PyPI; the test command installs it) generates valid and invalid
//! requests for every operation from the document and checks every answer — no 5xx, every
//! status, content type and body as documented, invalid input refused, no answer without
//! the token, 405 for undocumented methods — against a live embedded node and a live
//! cluster-mode node with the PostgreSQL archive (where the search configuration can be
//! changed).
//!
//! One check is left out: `positive_data_acceptance` (every schema-valid request gets a
//! 2xx). JSON Schema cannot say what the API rightly refuses of schema-valid input:
//! cursors the server did not issue, `valid_from` after `valid_until`, lengths in UTF-8
//! bytes rather than characters, `4768.0` where an integer is meant, the search
//! configuration on the embedded default. Those answers are still checked against the
//! document (a documented 4xx with the error body).

use chathub_domain::Role;
use chathub_e2e::{HubProcess, dev_token, http_get, http_request};
use chathub_testkit::{PostgresServer, RedisServer};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fuzzing rounds per operation: enough to reach every parameter and body field (a run
/// is ~15 s per node here), bounded so the test command stays within its budget.
const EXAMPLES_PER_OPERATION: &str = "40";

/// The longest a run may take before it is stopped (and the test fails).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Runs schemathesis against `hub` as an admin of `acme`, asserting it found nothing.
fn schemathesis(hub: &HubProcess) {
    let token = dev_token("acme", Role::Admin, "carol");
    let url = format!("http://{}/admin/v1/openapi.json", hub.http_addr);
    // A fixed seed keeps CI reproducible; set one to explore further.
    let seed = std::env::var("CHATHUB_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let report = chathub_testkit::ScratchDir::new("schemathesis");
    let mut run = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run", &url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", EXAMPLES_PER_OPERATION, "--seed", &seed])
        .args(["--request-timeout", "10", "--workers", "2"])
        .arg("--report-dir")
        .arg(report.path())
        .current_dir(report.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 runs: {e}"));
    // Read both pipes as the run goes (a full pipe would stall it).
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(run.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(run.stderr.take().map(|p| Box::new(p) as _));
    // Bounded: a run here takes ~15 s; shrinking failures can take minutes.
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Ok(Some(status)) = run.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        panic!("schemathesis ran over {RUN_LIMIT:?}:\n{stdout}\n{stderr}");
    };
    assert!(
        !stderr.contains("No module named schemathesis"),
        "schemathesis is not installed: python3 -m pip install 'schemathesis>=4.32,<5' \
         (scripts/test.sh installs it)"
    );
    assert!(
        status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        status.code()
    );
    // It really tested every operation (a document it could not read tests nothing).
    assert!(
        stdout.contains("Tested: 20"),
        "not every operation was tested:\n{stdout}"
    );
}

/// The document is served without a token, parses, and names every admin route.
async fn document_is_served(hub: &HubProcess) {
    let (status, body) = http_get(hub.http_addr, "/admin/v1/openapi.json").await;
    assert_eq!(status, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(api["openapi"], "3.1.0");
    let paths = api["paths"].as_object().expect("paths");
    for route in [
        "/admin/v1/catalogue",
        "/admin/v1/catalogue/{id}",
        "/admin/v1/users/{user}/profile",
        "/admin/v1/users/{user}/history",
        "/admin/v1/canned",
        "/admin/v1/canned/{id}",
        "/admin/v1/settings",
        "/admin/v1/search",
        "/admin/v1/search/config",
        "/admin/v1/reports/cycles.csv",
        "/admin/v1/conversations/{id}/transcript",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    // Privileges are the security requirement's roles.
    assert_eq!(
        api["paths"]["/admin/v1/catalogue"]["get"]["security"][0]["bearer"][0],
        "engagement.manage"
    );
}

/// Some data for the fuzzer to find: an item, a canned response, a profile.
async fn seed(hub: &HubProcess) {
    let token = dev_token("acme", Role::Admin, "carol");
    for (path, body) in [
        (
            "/admin/v1/catalogue/spring-coupon",
            r#"{"type":"coupon","name":"Spring coupon","rules":{"stock":10}}"#,
        ),
        (
            "/admin/v1/canned/hello",
            r#"{"shortcut":"/hello","text":"Hello {first_name}!"}"#,
        ),
        (
            "/admin/v1/users/ann/profile",
            r#"{"first_name":"Ann","points_balance":120}"#,
        ),
    ] {
        let (status, body) = http_request(hub.http_addr, "PUT", path, &token, body).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_embedded_default_matches_its_openapi_document() {
    let hub = HubProcess::spawn(&[]);
    document_is_served(&hub).await;
    seed(&hub).await;
    tokio::task::spawn_blocking(move || schemathesis(&hub))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cluster_node_with_the_archive_matches_its_openapi_document() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let hub = HubProcess::spawn_redis(&redis.url(), &["--archive", &postgres.url()]);
    document_is_served(&hub).await;
    seed(&hub).await;
    tokio::task::spawn_blocking(move || schemathesis(&hub))
        .await
        .unwrap();
}
