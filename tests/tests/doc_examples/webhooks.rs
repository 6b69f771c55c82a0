//! The Webhooks section's two examples held to a real delivery: the `http` example has
//! the headers a receiver gets and, in its body, every field a delivery has, with the
//! same JSON types, and no other; the Python snippet, run as written, verifies the
//! delivery and refuses it once its body is altered.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use tollgate_e2e::admin::AdminStack;
use tollgate_e2e::eventually;
use tollgate_e2e::webhook_receiver::{Received, WebhookReceiver};

use crate::markdown::example;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// `value` with every leaf replaced by its JSON type: what the example and a delivery
/// must share.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// A delivery of a real crossing: tenant `acme` on tier `pro` (5 requests a month, 1
/// of overage) crossing 80 %, sent to a receiver that verifies it.
async fn a_real_delivery() -> Received {
    let stack =
        AdminStack::start_with(&["--webhook-allow", "127.0.0.1", "--webhook-poll-ms", "100"]).await;
    let receiver = WebhookReceiver::start(SECRET, &[]).await.unwrap();
    let writes = [
        (
            "/tiers",
            json!({"name": "pro", "limits": [
                {"resource": "requests", "period": "month", "quota": 5, "overage": 1}]}),
        ),
        ("/tenants", json!({"id": "acme", "tier": "pro"})),
        (
            "/webhooks",
            json!({"id": "ops", "url": receiver.url("/tollgate"), "secret": SECRET,
                   "thresholds": [80]}),
        ),
    ];
    for (path, body) in writes {
        let (status, answer) = stack
            .send(stack.admin(Method::POST, path).json(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    for _ in 0..4 {
        let check = stack
            .check(&json!({"tenant": "acme", "amounts": {"requests": 1}}))
            .header(tollgate_protocol::check::DEADLINE_HEADER, "5000");
        let (status, decision) = stack.send(check).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
    }
    eventually(Duration::from_secs(30), "the 80 % event delivered", || {
        let delivered = !receiver.delivered().is_empty();
        async move { delivered }
    })
    .await
    .unwrap();
    receiver.delivered().remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_webhook_examples_are_what_a_receiver_gets_and_verifies() {
    let delivery = a_real_delivery().await;

    // The http example: the request line, the headers, a blank line, the body.
    let block = example("README.md", "webhook-delivery", "http").unwrap();
    let (head, body) = block.body.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    assert!(lines.next().unwrap().starts_with("POST /"), "{head}");
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap();
        let sent = delivery.headers.get(name).unwrap_or_else(|| {
            panic!("README.md:{}: {name} is not sent", block.line);
        });
        let alike = match name {
            "webhook-id" => [value, sent.as_str()].iter().all(|v| {
                v.strip_prefix("msg_")
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            }),
            "webhook-timestamp" => value.parse::<i64>().is_ok() && sent.parse::<i64>().is_ok(),
            "webhook-signature" => [value, sent.as_str()]
                .iter()
                .all(|v| v.starts_with("v1,") && v.len() == "v1,".len() + 44),
            _ => value == sent,
        };
        assert!(
            alike,
            "README.md:{}: {name}: {value} / sent {sent}",
            block.line
        );
    }
    let documented: Value = serde_json::from_str(body).unwrap();
    let sent = delivery.json();
    assert_eq!(
        shape(&documented),
        shape(&sent),
        "README.md:{}: the example's fields are not a delivery's",
        block.line
    );
    for pointer in [
        "/type",
        "/data/level",
        "/data/tier",
        "/data/resource",
        "/data/policy",
        "/data/period",
        "/data/window",
        "/data/threshold/kind",
        "/data/threshold/percent",
        "/data/found_by",
    ] {
        assert_eq!(
            documented.pointer(pointer),
            sent.pointer(pointer),
            "README.md:{}: {pointer}",
            block.line
        );
    }

    // The Python snippet as written, on the delivery and on it altered.
    let verify = example("README.md", "webhook-verify", "python").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify.py");
    std::fs::write(
        &script,
        format!(
            "{}\nimport json, sys\n\
             headers = json.loads(sys.argv[2])\n\
             body = open(sys.argv[3], 'rb').read()\n\
             print(verify(sys.argv[1], headers, body))\n",
            verify.body
        ),
    )
    .unwrap();
    let headers = serde_json::to_string(&delivery.headers).unwrap();
    let run = |body: &[u8]| {
        let path = dir.path().join("body");
        std::fs::write(&path, body).unwrap();
        let out = Command::new("python3")
            .arg(&script)
            .arg(SECRET)
            .arg(&headers)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(run(&delivery.body), "True", "README.md:{}", verify.line);
    let mut altered = delivery.body.clone();
    altered.push(b' ');
    assert_eq!(run(&altered), "False", "README.md:{}", verify.line);
}
