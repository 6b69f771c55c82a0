//! Threshold notifications end to end: real `tollgate serve` processes over real Redis
//! and PostgreSQL, deliveries to real HTTP receivers that verify every signature on
//! their own — one that takes them, one that fails the first attempts, one that is down
//! for a while, one that hangs — two control planes crossing the same thresholds at once
//! (one event each), and a control plane killed (SIGKILL) in the middle of its
//! deliveries (another sends them), or before it wrote the crossings it saw (another's
//! history flush finds them).
//!
//! Backoff, polling and the deadline per attempt are short (flags), so each scenario
//! takes seconds.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use tollgate_e2e::eventually;
use tollgate_e2e::postgres::Postgres;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::webhook_receiver::{Answer, Received, WebhookReceiver};
use tollgate_protocol::check::DEADLINE_HEADER;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Every control plane here: deliveries may go to loopback (the receivers), tried
/// again after 100 ms doubling to a second, looked for every 100 ms.
const FLAGS: [&str; 8] = [
    "--webhook-allow",
    "127.0.0.1",
    "--webhook-backoff-min-ms",
    "100",
    "--webhook-backoff-max-ms",
    "1000",
    "--webhook-poll-ms",
    "100",
];

/// Redis and PostgreSQL for one scenario; control planes are started over them.
/// Dropped in field order: the servers stop before their directory goes.
struct Stores {
    redis: Redis,
    postgres: Postgres,
    dir: TempDir,
}

impl Stores {
    async fn start() -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let (redis, postgres) =
            tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path())).unwrap();
        Stores {
            redis,
            postgres,
            dir,
        }
    }

    /// A control plane with [`FLAGS`], this deadline per attempt, and `extra`.
    async fn control_plane(&self, timeout_ms: u64, extra: &[&str]) -> ControlPlane {
        let timeout = timeout_ms.to_string();
        let mut flags: Vec<&str> = FLAGS.to_vec();
        flags.extend(["--webhook-timeout-ms", &timeout]);
        flags.extend_from_slice(extra);
        let url = self.postgres.url();
        let control_plane =
            ControlPlane::start_with(self.dir.path(), &url, &self.redis.url(), &flags)
                .await
                .unwrap();
        control_plane
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap();
        control_plane
    }

    /// One number from PostgreSQL.
    fn count(&self, sql: &str) -> u64 {
        self.postgres.psql(sql).unwrap().trim().parse().unwrap()
    }
}

/// An admin request that must succeed; its JSON answer.
async fn admin(
    control_plane: &ControlPlane,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let url = format!("{}/admin/v1{path}", control_plane.url());
    let mut request = reqwest::Client::new()
        .request(method.clone(), url)
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "{method} {path}: {status} {body}\n{}",
        control_plane.log()
    );
    body
}

/// `POST /v1/check` of one request for `tenant` on the decision listener; the decision.
async fn check(http: &reqwest::Client, control_plane: &ControlPlane, tenant: &str) -> String {
    let reply = http
        .post(format!("{}/v1/check", control_plane.decision_url()))
        .bearer_auth(DECISION_TOKEN)
        .header(DEADLINE_HEADER, "5000")
        .json(&json!({"tenant": tenant, "amounts": {"requests": 1}}))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    let body: Value = reply.json().await.unwrap();
    body["decision"].as_str().unwrap().to_string()
}

/// Tier `metered` of `quota` requests a month, and tenant `tenant` on it.
async fn metered(control_plane: &ControlPlane, tenant: &str, quota: u64) {
    let limits = json!([{"resource": "requests", "period": "month", "quota": quota}]);
    admin(
        control_plane,
        Method::POST,
        "/tiers",
        Some(json!({"name": "metered", "limits": limits})),
    )
    .await;
    admin(
        control_plane,
        Method::POST,
        "/tenants",
        Some(json!({"id": tenant, "tier": "metered"})),
    )
    .await;
}

/// Subscribes `url` as `id` to `thresholds` (percent) and, with `hard`, the hard limit.
async fn subscribe(
    control_plane: &ControlPlane,
    id: &str,
    url: &str,
    thresholds: &[u16],
    hard: bool,
) {
    let body =
        json!({"id": id, "url": url, "secret": SECRET, "thresholds": thresholds, "hard": hard});
    admin(control_plane, Method::POST, "/webhooks", Some(body)).await;
}

/// `50%`, `hard`: the threshold an event names.
fn threshold_of(event: &Value) -> String {
    let threshold = &event["data"]["threshold"];
    match threshold["kind"].as_str() {
        Some("hard") => "hard".into(),
        _ => format!("{}%", threshold["percent"]),
    }
}

/// The deliveries a receiver took, by event: how many times each arrived delivered.
fn delivered_events(received: &[Received]) -> BTreeMap<String, usize> {
    let mut events = BTreeMap::new();
    for delivery in received.iter().filter(|r| r.delivered()) {
        let event = delivery.json();
        *events
            .entry(format!(
                "{} {}",
                event["data"]["level"],
                threshold_of(&event)
            ))
            .or_insert(0) += 1;
    }
    events
}

/// What [`delivered_events`] must find: each of `thresholds` of acme's limit, once.
fn acme_once_each(thresholds: &[&str]) -> BTreeMap<String, usize> {
    (thresholds.iter())
        .map(|t| (format!("\"acme\" {t}"), 1))
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    eventually(timeout, what, || {
        let holds = condition();
        async move { holds }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verifying_receiver_gets_each_threshold_once_and_a_failing_one_once_it_is_back() {
    let started = Instant::now();
    let stores = Stores::start().await;
    let control_plane = stores.control_plane(1_000, &[]).await;
    let good = WebhookReceiver::start(SECRET, &[]).await.unwrap();
    let failing = [
        Answer::Status(503),
        Answer::Status(500),
        Answer::Status(503),
    ];
    let flaky = WebhookReceiver::start(SECRET, &failing).await.unwrap();
    metered(&control_plane, "acme", 10).await;
    subscribe(
        &control_plane,
        "verify",
        &good.url("/hooks/verify"),
        &[50, 100],
        true,
    )
    .await;
    subscribe(
        &control_plane,
        "flaky",
        &flaky.url("/hooks/flaky"),
        &[50],
        false,
    )
    .await;

    let http = reqwest::Client::new();
    for _ in 0..10 {
        assert_ne!(check(&http, &control_plane, "acme").await, "reject");
    }
    assert_eq!(check(&http, &control_plane, "acme").await, "reject");

    wait_until("three events delivered", Duration::from_secs(15), || {
        good.delivered().len() >= 3
    })
    .await;
    wait_until(
        "the flaky receiver took its event",
        Duration::from_secs(15),
        || !flaky.delivered().is_empty(),
    )
    .await;
    // Time for anything sent twice to arrive.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let received = good.received();
    assert!(
        received.iter().all(|r| r.verified),
        "every signature verifies"
    );
    let events = delivered_events(&received);
    let expected = acme_once_each(&["50%", "100%", "hard"]);
    assert_eq!(events, expected, "each threshold exactly once");
    let ids: BTreeSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one webhook-id per message");
    let now = chrono::Utc::now().timestamp();
    for delivery in &received {
        assert!((now - delivery.timestamp).abs() < 60);
        let event = delivery.json();
        assert_eq!(event["type"], "quota.threshold.crossed");
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        let data = &event["data"];
        assert_eq!(
            (data["tenant"].as_str(), data["level"].as_str()),
            (Some("acme"), Some("acme"))
        );
        assert_eq!(
            (data["resource"].as_str(), data["policy"].as_str()),
            (Some("requests"), Some("monthly"))
        );
        assert_eq!(
            (data["quota"].as_u64(), data["hard_limit"].as_u64()),
            (Some(10), Some(10))
        );
        assert!(
            data["resets_at"]
                .as_str()
                .unwrap()
                .ends_with("-01T00:00:00.000Z"),
            "{data}"
        );
    }
    let fifty = received
        .iter()
        .map(Received::json)
        .find(|e| threshold_of(e) == "50%")
        .unwrap();
    assert_eq!(fifty["data"]["used"], 5);

    // The failing receiver: three refusals, then taken; one delivery, four attempts.
    let flaky_received = flaky.received();
    let answers: Vec<Option<u16>> = flaky_received.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [Some(503), Some(500), Some(503), Some(204)]);
    assert_eq!(
        flaky_received
            .iter()
            .map(|r| r.id.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        1
    );
    let log = admin(
        &control_plane,
        Method::GET,
        "/webhooks/flaky/deliveries",
        None,
    )
    .await;
    let delivery = &log["items"][0];
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_u64()),
        (Some("delivered"), Some(4))
    );
    let codes: Vec<u64> = (delivery["log"].as_array().unwrap().iter())
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [204, 503, 500, 503], "newest first");
    assert_eq!(delivery["id"].as_str().unwrap(), flaky_received[0].id);
    // The same log from the command line: one row per attempt, its answer last.
    let cli = std::process::Command::new(ControlPlane::binary().unwrap())
        .args(["webhook", "deliveries", "flaky"])
        .env("TOLLGATE_SERVER", control_plane.url())
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let table = String::from_utf8(cli.stdout).unwrap();
    assert!(cli.status.success(), "{table}");
    let rows: Vec<(&str, &str)> = (table.lines().skip(1))
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            (cells[1], *cells.last().unwrap())
        })
        .collect();
    let answers: Vec<&str> = rows.iter().map(|(_, answer)| *answer).collect();
    assert_eq!(answers, ["204", "503", "500", "503"], "{table}");
    assert!(
        rows.iter().all(|(status, _)| *status == "delivered"),
        "{table}"
    );

    assert_eq!(
        control_plane
            .metric("tollgate_webhook_delivered_total", "")
            .await
            .unwrap(),
        4.0
    );
    assert_eq!(
        control_plane
            .metric("tollgate_webhook_attempts_total", "result=\"http_error\"")
            .await
            .unwrap(),
        3.0
    );
    eventually(Duration::from_secs(10), "nothing pending", || async {
        control_plane
            .metric("tollgate_webhook_pending", "")
            .await
            .unwrap()
            == 0.0
    })
    .await
    .unwrap();
    eprintln!(
        "figures: 3 events to the verifying receiver, each delivered once; the failing one \
         took its event at attempt 4; {:.1?} in all",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_a_while_gets_every_event_once_it_is_back() {
    let stores = Stores::start().await;
    let control_plane = stores.control_plane(1_000, &[]).await;
    // Nobody listens on the subscription's port yet: every attempt is refused.
    let port = tollgate_e2e::process::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/later");
    metered(&control_plane, "acme", 4).await;
    subscribe(&control_plane, "later", &url, &[50, 100], true).await;
    let http = reqwest::Client::new();
    for _ in 0..4 {
        assert_ne!(check(&http, &control_plane, "acme").await, "reject");
    }
    assert_eq!(check(&http, &control_plane, "acme").await, "reject");
    let attempts = "SELECT count(*) FROM webhook_attempts WHERE status_code IS NULL";
    wait_until(
        "two failed attempts of each of three deliveries",
        Duration::from_secs(30),
        || stores.count(attempts) >= 6,
    )
    .await;
    assert_eq!(
        stores.count("SELECT count(*) FROM webhook_outbox WHERE status = 'pending'"),
        3
    );

    let receiver = WebhookReceiver::start_on(port, SECRET, &[]).await.unwrap();
    wait_until(
        "every event delivered once it is back",
        Duration::from_secs(30),
        || receiver.delivered().len() >= 3,
    )
    .await;
    // Time for anything sent twice to arrive.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = delivered_events(&receiver.received());
    let expected = acme_once_each(&["50%", "100%", "hard"]);
    assert_eq!(events, expected, "each event delivered, once");
    let log = admin(
        &control_plane,
        Method::GET,
        "/webhooks/later/deliveries",
        None,
    )
    .await;
    for delivery in log["items"].as_array().unwrap() {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        let attempts = delivery["log"].as_array().unwrap();
        assert!(attempts.len() >= 3, "{delivery}");
        assert_eq!(attempts[0]["status_code"], 204);
        assert!(
            attempts[1..].iter().all(|a| a["status_code"].is_null()
                && a["error"].as_str().is_some_and(|e| !e.is_empty())),
            "{delivery}"
        );
    }
    assert!(
        control_plane
            .metric("tollgate_webhook_attempts_total", "result=\"connect\"")
            .await
            .unwrap()
            >= 6.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_runs_into_the_deadline_and_is_tried_again() {
    let stores = Stores::start().await;
    let control_plane = stores.control_plane(1_000, &[]).await;
    let hanging = WebhookReceiver::start(SECRET, &[Answer::Hang])
        .await
        .unwrap();
    metered(&control_plane, "acme", 1).await;
    subscribe(
        &control_plane,
        "slow",
        &hanging.url("/hooks/slow"),
        &[100],
        false,
    )
    .await;
    let http = reqwest::Client::new();
    assert_ne!(check(&http, &control_plane, "acme").await, "reject");

    wait_until("delivered after the hang", Duration::from_secs(15), || {
        !hanging.delivered().is_empty()
    })
    .await;
    let received = hanging.received();
    assert_eq!(received.len(), 2, "one held open, one taken");
    assert_eq!(
        (received[0].answered, received[1].answered),
        (None, Some(204))
    );
    assert_eq!(
        received[0].id, received[1].id,
        "the same message, tried again"
    );
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(1_000),
        "the deadline came first: {gap:?}"
    );

    let log = admin(
        &control_plane,
        Method::GET,
        "/webhooks/slow/deliveries",
        None,
    )
    .await;
    let attempts = log["items"][0]["log"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 2, "{log}");
    assert_eq!(attempts[0]["status_code"], 204);
    let first = &attempts[1];
    assert!(first["status_code"].is_null());
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{first}"
    );
    assert!(first["duration_ms"].as_u64().unwrap() >= 1_000, "{first}");
    assert_eq!(
        control_plane
            .metric("tollgate_webhook_attempts_total", "result=\"timeout\"")
            .await
            .unwrap(),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_crossing_the_same_thresholds_at_once_send_one_event_each() {
    let stores = Stores::start().await;
    let (one, two) = tokio::join!(
        stores.control_plane(1_000, &[]),
        stores.control_plane(1_000, &[])
    );
    let receiver = WebhookReceiver::start(SECRET, &[]).await.unwrap();
    metered(&one, "acme", 40).await;
    subscribe(
        &one,
        "ops",
        &receiver.url("/hooks/ops"),
        &[25, 50, 75, 100],
        true,
    )
    .await;
    // The other control plane hears of the subscription through the bus.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Sixteen clients, half on each control plane, until each was refused three times:
    // both cross thresholds, both are refused at the hard limit, and both flush the
    // counter past every threshold (the safety net).
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let target = if i % 2 == 0 {
                one.decision_url()
            } else {
                two.decision_url()
            };
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut admitted, mut refused) = (0, 0);
                // A deadline long enough for two cores and sixteen clients: every check
                // is decided (none is a 503 whose count the filter would take back).
                while refused < 3 {
                    let reply: Value = http
                        .post(format!("{target}/v1/check"))
                        .bearer_auth(DECISION_TOKEN)
                        .header(DEADLINE_HEADER, "5000")
                        .json(&json!({"tenant": "acme", "amounts": {"requests": 1}}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match reply["decision"].as_str() {
                        Some("reject") => refused += 1,
                        Some("allow" | "warn") => admitted += 1,
                        _ => panic!("not a decision: {reply}"),
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for client in clients {
        admitted += client.await.unwrap();
    }
    assert_eq!(admitted, 40);

    wait_until("five events delivered", Duration::from_secs(15), || {
        receiver.delivered().len() >= 5
    })
    .await;
    // Both control planes flush the counter a few more times meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let events = delivered_events(&received);
    let expected = acme_once_each(&["25%", "50%", "75%", "100%", "hard"]);
    assert_eq!(
        events, expected,
        "one event per threshold, from either control plane"
    );
    assert_eq!(received.len(), 5, "nothing sent twice");
    assert_eq!(stores.count("SELECT count(*) FROM threshold_crossings"), 5);
    let (by_one, by_two) = (
        one.metric("tollgate_webhook_crossings_total", "")
            .await
            .unwrap(),
        two.metric("tollgate_webhook_crossings_total", "")
            .await
            .unwrap(),
    );
    assert_eq!(by_one + by_two, 5.0);
    // Both saw crossings (each was refused at the hard limit, at least) and wrote them:
    // what one recorded first, the other found recorded.
    let (seen_one, seen_two) = (
        one.metric("tollgate_webhook_crossings_reported_total", "")
            .await
            .unwrap(),
        two.metric("tollgate_webhook_crossings_reported_total", "")
            .await
            .unwrap(),
    );
    assert!(
        seen_one >= 1.0 && seen_two >= 1.0 && seen_one + seen_two > 5.0,
        "reported by one {seen_one}, by two {seen_two}"
    );
    let (sent_one, sent_two) = (
        one.metric("tollgate_webhook_delivered_total", "")
            .await
            .unwrap(),
        two.metric("tollgate_webhook_delivered_total", "")
            .await
            .unwrap(),
    );
    assert_eq!(sent_one + sent_two, 5.0);
    eprintln!(
        "figures: two control planes, 40 admitted, 48 refused; crossings reported by one \
         {seen_one} and two {seen_two}, recorded first by one {by_one} and two {by_two}; \
         delivered by one {sent_one} and two {sent_two}; the receiver took 5 events, each \
         once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_killed_mid_delivery_leaves_its_deliveries_to_another() {
    let stores = Stores::start().await;
    // A two-second deadline: each claim is held for six.
    let mut first = stores.control_plane(2_000, &[]).await;
    let receiver = WebhookReceiver::start(SECRET, &[]).await.unwrap();
    receiver.answer_with(Answer::Hang);
    metered(&first, "acme", 4).await;
    subscribe(&first, "ops", &receiver.url("/hooks/ops"), &[50, 100], true).await;
    let http = reqwest::Client::new();
    for _ in 0..4 {
        assert_ne!(check(&http, &first, "acme").await, "reject");
    }
    wait_until(
        "three deliveries in flight",
        Duration::from_secs(15),
        || receiver.received().len() >= 3,
    )
    .await;
    let pending = stores.count("SELECT count(*) FROM webhook_outbox WHERE status = 'pending'");
    assert_eq!(pending, 3);
    first.kill();
    let killed_at = Instant::now();
    receiver.answer_with(Answer::Status(204));

    let second = stores.control_plane(2_000, &[]).await;
    wait_until(
        "every event delivered by the other",
        Duration::from_secs(30),
        || receiver.delivered().len() >= 3,
    )
    .await;
    let took = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let events = delivered_events(&receiver.received());
    let expected = acme_once_each(&["50%", "100%", "hard"]);
    assert_eq!(events, expected, "each event delivered, once");
    assert_eq!(
        stores.count("SELECT count(*) FROM webhook_outbox WHERE status = 'delivered'"),
        3
    );
    assert_eq!(
        second
            .metric("tollgate_webhook_delivered_total", "")
            .await
            .unwrap(),
        3.0
    );
    let log = admin(&second, Method::GET, "/webhooks/ops/deliveries", None).await;
    for delivery in log["items"].as_array().unwrap() {
        // The killed process's claims count, though it logged nothing of them.
        assert!(delivery["attempts"].as_u64().unwrap() >= 2, "{delivery}");
        assert_eq!(delivery["log"][0]["status_code"], 204);
    }
    eprintln!(
        "figures: killed with 3 deliveries in flight; the other control plane delivered all \
         3, each once, {took:.1?} after the kill (the claims' lease is 6 s)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crossings_a_killed_control_plane_never_wrote_are_found_by_the_others_flush() {
    let stores = Stores::start().await;
    // The first control plane holds what it saw for a minute before writing it; the
    // second flushes the usage history every half second.
    let mut first = stores
        .control_plane(1_000, &["--events-flush-ms", "60000"])
        .await;
    let second = stores
        .control_plane(1_000, &["--history-flush-ms", "500"])
        .await;
    let receiver = WebhookReceiver::start(SECRET, &[]).await.unwrap();
    metered(&first, "acme", 4).await;
    subscribe(&first, "ops", &receiver.url("/hooks/ops"), &[50, 100], true).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let http = reqwest::Client::new();
    for _ in 0..4 {
        assert_ne!(check(&http, &first, "acme").await, "reject");
    }
    // 50 % and 100 % were crossed, seen, and are only in the first one's memory.
    assert_eq!(stores.count("SELECT count(*) FROM threshold_crossings"), 0);
    first.kill();

    // One more request, through the other: refused at the hard limit (its check reports
    // that), and its counter flushed past 50 % and 100 % (the safety net finds those).
    assert_eq!(check(&http, &second, "acme").await, "reject");
    let delivered = eventually(Duration::from_secs(30), "every threshold delivered", || {
        let all = receiver.delivered().len() >= 3;
        async move { all }
    })
    .await;
    assert!(
        delivered.is_ok(),
        "crossings: {}\nreceived: {:?}\nthe other's log:\n{}",
        stores
            .postgres
            .psql("SELECT threshold, found_by, used FROM threshold_crossings")
            .unwrap(),
        delivered_events(&receiver.received()),
        second.log()
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let received = receiver.received();
    let events = delivered_events(&received);
    let expected = acme_once_each(&["50%", "100%", "hard"]);
    assert_eq!(events, expected, "each threshold once, none lost");
    let found_by: BTreeMap<String, String> = (received.iter().map(Received::json))
        .map(|e| {
            (
                threshold_of(&e),
                e["data"]["found_by"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(found_by["50%"], "flush", "{found_by:?}");
    assert_eq!(found_by["100%"], "flush", "{found_by:?}");
    eprintln!("figures: killed with 2 crossings unwritten; delivered once each: {found_by:?}");
}
