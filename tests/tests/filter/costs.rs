//! What a request costs: a request count, request bytes (streamed chunk by chunk, or
//! not what content-length announced), and costs known only from the response (its
//! size, a header, a number in a JSON or event-stream body), settled afterwards.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_e2e::eventually;
use tollgate_e2e::raw::{chunked_upload, RawConnection};
use tollgate_e2e::response::{header, quota_exceeded, QUOTA_EXCEEDED};
use tollgate_e2e::{Gateway, GatewayOptions};

use super::{
    get, own_usage, per_month, start_with_bytes_tier, start_with_tier, stat, upstream_status,
    with_filter,
};

/// Waits until `tenant`'s monthly usage of `resource` is `expected`: settlements are
/// sent after the response, so usage reaches its final value a little later.
async fn settled(gateway: &Gateway, tenant: &str, resource: &str, expected: u64) {
    gateway
        .wait_usage(tenant, resource, "month", expected)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_count_quota_is_enforced_on_gets_with_quota_headers() {
    let gateway = start_with_tier(
        GatewayOptions::default(),
        "metered",
        json!([{"resource": "requests", "period": "day", "quota": 3, "warn_at": 0.5}]),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;
    let acme = [("x-tenant-id", "acme")];

    let first = get(envoy, "/items", &acme).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        header(&first, "ratelimit-policy"),
        r#""daily";q=3;qu="requests";w=86400"#
    );
    let reset: u64 = header(&first, "x-quota-reset").parse().unwrap();
    assert!((1..=86_400).contains(&reset));
    assert_eq!(
        header(&first, "ratelimit"),
        format!(r#""daily";r=2;t={reset}"#)
    );
    assert_eq!(header(&first, "x-quota-limit"), "3");
    assert_eq!(header(&first, "x-quota-used"), "1");
    assert_eq!(header(&first, "x-quota-remaining"), "2");
    assert_eq!(header(&first, "x-quota-status"), "ok");
    assert_eq!(upstream_status(&gateway, "acme").as_deref(), Some("ok"));
    let second = get(envoy, "/items", &acme).await;
    assert_eq!(header(&second, "x-quota-status"), "warning");
    assert_eq!(
        upstream_status(&gateway, "acme").as_deref(),
        Some("warning"),
        "the upstream is told"
    );
    assert_eq!(get(envoy, "/items", &acme).await.status(), StatusCode::OK);

    let fourth = get(envoy, "/items", &acme).await;
    assert_eq!(header(&fourth, "x-quota-status"), "exceeded");
    let body = quota_exceeded(fourth, "requests").await;
    assert_eq!(body["violated-policies"], json!(["daily"]));
    assert_eq!(
        (body["limit"].clone(), body["used"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(gateway.upstream.received("acme").requests, 3);
    assert_eq!(own_usage(&gateway, "acme", "requests", "day").await, 3);
    assert_eq!(stat(envoy, "allowed").await, 1);
    assert_eq!(stat(envoy, "warned").await, 2);
    assert_eq!(stat(envoy, "rejected").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upload_over_quota_is_refused_before_the_upstream_gets_its_end() {
    let gateway = start_with_bytes_tier("bytes", 200_000).await;

    // 1 MiB in 16 KiB chunks 10 ms apart, without content-length, against a
    // 200 000-byte limit: what fits flows to the upstream chunk by chunk.
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "acme")],
        16 * 1024,
        64,
        Duration::from_millis(10),
    )
    .await
    .unwrap();

    let response = &upload.response;
    // Once the upstream saw its request cut off, what it got is final.
    eventually(
        Duration::from_secs(5),
        "the upstream request ends",
        || async { gateway.upstream.received("acme").aborted == 1 },
    )
    .await
    .unwrap();
    let received = gateway.upstream.received("acme");
    eprintln!(
        "client sent {} body bytes, the upstream got {received:?}",
        upload.body_bytes_sent
    );
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json().unwrap();
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(body["resource"], "request_bytes");
    assert!(
        !upload.finished,
        "refused while the client was still sending"
    );
    assert_eq!(received.requests, 1);
    assert_eq!(
        received.completed, 0,
        "the upstream never saw the body's end"
    );
    assert!(
        (100_000..=200_000).contains(&received.bytes),
        "the upstream got {} bytes: what fits the limit should pass, no more",
        received.bytes
    );
    // What was counted is what the upstream got (the reservation ahead is refunded).
    settled(&gateway, "acme", "request_bytes", received.bytes).await;
    assert!(stat(&gateway.envoy, "rejected").await >= 1);
    assert!(
        stat(&gateway.envoy, "callouts").await >= 2,
        "checked again as the body streamed"
    );
    // A tenant under its limit uploads chunked in full, and pays exactly its size.
    gateway.create_tenant("globex", "bytes").await.unwrap();
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "globex")],
        10_000,
        15,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(upload.response.status, 200, "{:?}", upload.response);
    assert!(upload.finished);
    assert_eq!(gateway.upstream.received("globex").completed, 1);
    settled(&gateway, "globex", "request_bytes", 150_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_shorter_than_its_content_length_settles_to_the_bytes_seen() {
    let gateway = start_with_bytes_tier("bytes", 1_000_000).await;

    let mut connection = RawConnection::start(
        gateway.envoy.port,
        "POST",
        "/upload",
        &[("x-tenant-id", "acme"), ("content-length", "10000")],
    )
    .await
    .unwrap();
    connection.send(&[b'x'; 4_000]).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "4000 bytes reach the upstream",
        || async { gateway.upstream.received("acme").bytes == 4_000 },
    )
    .await
    .unwrap();
    // 10 000 bytes were reserved at the headers.
    assert_eq!(gateway.usage("acme").await.unwrap(), 10_000);
    connection.close();

    settled(&gateway, "acme", "request_bytes", 4_000).await;
    eventually(
        Duration::from_secs(5),
        "the upstream request ends",
        || async { gateway.upstream.received("acme").aborted == 1 },
    )
    .await
    .unwrap();
    assert_eq!(gateway.upstream.received("acme").bytes, 4_000);
    assert_eq!(gateway.upstream.received("acme").completed, 0);
    assert_eq!(stat(&gateway.envoy, "settlements").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_longer_than_its_content_length_is_refused_by_envoy_and_not_counted() {
    let gateway = start_with_bytes_tier("bytes", 1_000_000).await;

    // HTTP/2 is the only way to send more DATA than content-length announced (over
    // HTTP/1.1 the extra bytes would be the next request).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gateway.envoy.port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{}/upload", gateway.envoy.port))
        .header("x-tenant-id", "acme")
        .header("content-length", "100")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    // Let the check at the headers (which reserves 100 bytes) be decided first: counted
    // by the control plane *and* its answer applied by the filter. (A stream reset while
    // the check is still in flight cancels the callout, and the filter never learns the
    // reservation to refund it: the abandoned-check case of the reliability work.)
    eventually(Duration::from_secs(5), "the admission", || async {
        gateway.usage("acme").await.is_ok_and(|u| u == 100)
            && gateway
                .envoy
                .filter_stat("allowed")
                .await
                .is_ok_and(|n| n == 1)
    })
    .await
    .unwrap();
    body.send_data(bytes::Bytes::from(vec![b'x'; 300]), true)
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer or a reset within 10 s");
    eprintln!("a body past content-length: {outcome:?}");
    match &outcome {
        Ok(response) => assert!(
            !response.status().is_success(),
            "a body past content-length was accepted: {response:?}"
        ),
        Err(error) => assert!(
            error.is_reset() || error.is_go_away() || error.is_io(),
            "{error:?}"
        ),
    }
    let received = gateway.upstream.received("acme");
    assert_eq!(received.completed, 0, "the upstream never got a whole body");
    // Whatever reached the upstream is what counts; the reservation is refunded.
    settled(&gateway, "acme", "request_bytes", received.bytes).await;
    assert_eq!(received.bytes, 0, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_bytes_are_settled_after_the_response_and_refuse_the_next_request() {
    let gateway = start_with_tier(
        with_filter(json!({"costs": {"response_bytes": true}})),
        "downloads",
        per_month("response_bytes", 1000),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;

    let big = get(
        envoy,
        "/download",
        &[("x-tenant-id", "acme"), ("x-test-response-bytes", "1500")],
    )
    .await;
    assert_eq!(big.status(), StatusCode::OK);
    assert_eq!(big.bytes().await.unwrap().len(), 1_500);
    settled(&gateway, "acme", "response_bytes", 1_500).await;

    let next = get(envoy, "/download", &[("x-tenant-id", "acme")]).await;
    quota_exceeded(next, "response_bytes").await;
    assert_eq!(gateway.upstream.received("acme").requests, 1);
    assert_eq!(stat(envoy, "settlements").await, 1, "one admitted request");
    assert_eq!(stat(envoy, "settlement_failures").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_header_is_settled_after_the_response_and_refuses_the_next_request() {
    let gateway = start_with_tier(
        with_filter(json!({
            "costs": {"response_header": {"header": "x-usage-tokens", "resource": "tokens"}}
        })),
        "ai",
        per_month("tokens", 100),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;
    let ask = |tokens: &'static str| async move {
        get(
            envoy,
            "/v1/completions",
            &[("x-tenant-id", "acme"), ("x-test-usage-header", tokens)],
        )
        .await
    };

    let first = ask("40").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-usage-tokens"), "40");
    settled(&gateway, "acme", "tokens", 40).await;
    // The upstream already did the work: billed even past the hard limit.
    assert_eq!(ask("70").await.status(), StatusCode::OK);
    settled(&gateway, "acme", "tokens", 110).await;
    quota_exceeded(ask("1").await, "tokens").await;
    assert_eq!(gateway.upstream.received("acme").requests, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_in_a_json_or_event_stream_body_is_settled_and_refuses_the_next_request() {
    let gateway = start_with_tier(
        with_filter(json!({
            "costs": {"response_json": {"pointer": "/usage/total_tokens", "resource": "tokens"}}
        })),
        "ai",
        per_month("tokens", 100),
        &["acme", "globex"],
    )
    .await;
    let envoy = &gateway.envoy;

    // A plain JSON answer.
    let answer = get(
        envoy,
        "/v1/chat/completions",
        &[("x-tenant-id", "acme"), ("x-test-usage-json", "120")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["usage"]["total_tokens"], 120,
        "the body passes unchanged"
    );
    settled(&gateway, "acme", "tokens", 120).await;
    let next = get(envoy, "/v1/chat/completions", &[("x-tenant-id", "acme")]).await;
    quota_exceeded(next, "tokens").await;

    // A streamed answer: the usage arrives in the last event before [DONE], split
    // across two writes, after an event whose usage is null.
    let stream = get(
        envoy,
        "/v1/chat/completions",
        &[("x-tenant-id", "globex"), ("x-test-usage-sse", "130")],
    )
    .await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(header(&stream, "content-type"), "text/event-stream");
    let text = stream.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    settled(&gateway, "globex", "tokens", 130).await;
    let next = get(envoy, "/v1/chat/completions", &[("x-tenant-id", "globex")]).await;
    quota_exceeded(next, "tokens").await;
    assert_eq!(gateway.upstream.received("globex").requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_chunked_upload_flows_with_few_checks_and_is_counted_exactly() {
    let gateway = start_with_bytes_tier("big", 1 << 30).await;
    let callouts_before = stat(&gateway.envoy, "callouts").await;
    // 8 MiB in 64 KiB chunks about a millisecond apart (~60 MB/s): each reservation is
    // asked for ahead while the body flows, twice as large each time.
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "acme")],
        64 * 1024,
        128,
        Duration::from_millis(1),
    )
    .await
    .unwrap();
    assert_eq!(upload.response.status, 200, "{:?}", upload.response);
    assert_eq!(gateway.upstream.received("acme").bytes, 8 << 20);
    settled(&gateway, "acme", "request_bytes", 8 << 20).await;
    let checks = stat(&gateway.envoy, "callouts").await - callouts_before;
    eprintln!("8 MiB in 128 chunks: {checks} checks");
    assert!(checks <= 16, "{checks} checks for 128 chunks");
}
