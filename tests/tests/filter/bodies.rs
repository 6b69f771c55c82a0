//! Bodies no honest client sends: a `content-length` that is negative, overflows or
//! asks for more than any quota; a body that trickles a byte at a time and then stops
//! (slow-loris); a body that never ends. None of them may count what did not reach the
//! upstream, pass a hard limit, or hold a request open past Envoy's timeouts.

use std::time::{Duration, Instant};

use tollgate_e2e::eventually;
use tollgate_e2e::raw::{chunked_upload, RawConnection};
use tollgate_e2e::response::QUOTA_EXCEEDED;
use tollgate_e2e::{Gateway, GatewayOptions};

use super::{start, start_with_bytes_tier, stat};

/// A gateway whose tenant `acme` may upload `quota` request bytes a month plus
/// `overage`, with Envoy's `stream_idle_timeout` at `idle`.
async fn start_uploads(quota: u64, overage: u64, idle: Duration) -> Gateway {
    let gateway = start(GatewayOptions {
        stream_idle_timeout: idle,
        ..GatewayOptions::default()
    })
    .await;
    gateway
        .create_monthly_bytes_tier("uploads", quota, overage, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "uploads").await.unwrap();
    gateway
}

/// Waits until the upstream saw `tenant`'s requests end without their body's end
/// (`aborted`), so what it received is final.
async fn upstream_cut_off(gateway: &Gateway, tenant: &str, aborted: u64) {
    eventually(
        Duration::from_secs(10),
        "the upstream request is cut off",
        || async { gateway.upstream.received(tenant).aborted == aborted },
    )
    .await
    .unwrap();
}

/// An upload of `acme`'s whose head announces `content_length`; no body sent yet.
async fn upload_announcing(gateway: &Gateway, content_length: &str) -> RawConnection {
    let headers = [("x-tenant-id", "acme"), ("content-length", content_length)];
    RawConnection::start(gateway.envoy.port, "POST", "/upload", &headers)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn negative_overflowing_and_absurd_content_lengths_count_nothing() {
    let gateway = start_with_bytes_tier("bytes", 1_000_000).await;
    // (content-length, the status): Envoy's HTTP/1 codec refuses what is not a length
    // (400) before any filter runs; what is one, however large, the filter asks for —
    // capped at the largest amount a check carries — and a hard limit refuses it (429).
    let cases: [(&str, u16); 12] = [
        ("-1", 400),
        ("-0", 400),
        ("+5", 400),
        ("0x10", 400),
        ("1e3", 400),
        ("abc", 400),
        ("5, 6", 400),
        ("18446744073709551616", 400),
        ("99999999999999999999999999999", 400),
        ("18446744073709551615", 429),
        ("9223372036854775808", 429),
        ("1000001", 429),
    ];
    for (content_length, status) in cases {
        let mut connection = upload_announcing(&gateway, content_length).await;
        let response = connection.response(Duration::from_secs(10)).await.unwrap();
        eprintln!(
            "content-length {content_length:?}: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.status, status, "content-length {content_length:?}");
        if status == 429 {
            let problem = response.json().unwrap();
            assert_eq!(problem["type"], QUOTA_EXCEEDED, "{problem}");
            assert_eq!(problem["resource"], "request_bytes", "{problem}");
        }
    }
    assert_eq!(gateway.upstream.received("acme").requests, 0);
    assert_eq!(gateway.usage("acme").await.unwrap(), 0, "nothing counted");

    // The quota is whole: an honest upload of all of it passes, and costs its size.
    let mut connection = upload_announcing(&gateway, "1000000").await;
    connection.send(&vec![b'x'; 1_000_000]).await.unwrap();
    let response = connection.response(Duration::from_secs(10)).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(gateway.usage("acme").await.unwrap(), 1_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_trickles_and_stops_is_ended_by_envoy_and_counted_as_far_as_it_got() {
    let idle = Duration::from_secs(2);
    let gateway = start_uploads(1_000_000, 0, idle).await;
    let callouts_before = stat(&gateway.envoy, "callouts").await;
    let mut connection = RawConnection::start(
        gateway.envoy.port,
        "POST",
        "/upload",
        &[("x-tenant-id", "acme"), ("transfer-encoding", "chunked")],
    )
    .await
    .unwrap();
    // One byte every 100 ms for 3 s: longer than the idle timeout in all, but never
    // idle, so the stream lives and every byte flows on to the upstream as it comes.
    // Stamped before each write: Envoy restarts its idle timer when it reads the byte,
    // which can be a moment before the write returns here.
    let mut last_byte = Instant::now();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last_byte = Instant::now();
        connection.send(b"1\r\nx\r\n").await.unwrap();
    }
    eventually(
        Duration::from_secs(5),
        "30 bytes reach the upstream",
        || async { gateway.upstream.received("acme").bytes == 30 },
    )
    .await
    .unwrap();
    // Then nothing: the client neither ends the body nor hangs up.
    let response = connection.response(Duration::from_secs(10)).await.unwrap();
    let waited = last_byte.elapsed();
    eprintln!(
        "after {waited:?} of silence: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        response.status, 408,
        "Envoy's stream idle timeout: {response:?}"
    );
    // Envoy's timers tick in whole milliseconds: allow one tick of rounding.
    assert!(
        waited + Duration::from_millis(5) >= idle,
        "ended only once idle: {waited:?}"
    );
    upstream_cut_off(&gateway, "acme", 1).await;
    let received = gateway.upstream.received("acme");
    assert_eq!((received.bytes, received.completed), (30, 0));
    // The reservation made for the body is settled to the 30 bytes that passed.
    gateway
        .wait_usage("acme", "request_bytes", "month", 30)
        .await
        .unwrap();
    let checks = stat(&gateway.envoy, "callouts").await - callouts_before;
    assert!(
        checks <= 2,
        "{checks} checks for 30 one-byte chunks: a trickle must not cost a check per chunk"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_ends_is_cut_at_the_hard_limit_and_counted_as_far_as_it_got() {
    // 300 000 bytes a month and 100 000 of overage: 400 000 is the hard limit.
    let gateway = start_uploads(300_000, 100_000, Duration::from_secs(60)).await;
    let started = Instant::now();
    // 16 KiB chunks, 2 ms apart, for as long as the gateway takes them.
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "acme")],
        16 * 1024,
        usize::MAX - 1,
        Duration::from_millis(2),
    )
    .await
    .unwrap();
    eprintln!(
        "answered {} after {:?} and {} body bytes",
        upload.response.status,
        started.elapsed(),
        upload.body_bytes_sent
    );
    assert_eq!(upload.response.status, 429, "{:?}", upload.response);
    assert_eq!(upload.response.json().unwrap()["type"], QUOTA_EXCEEDED);
    assert!(!upload.finished);
    upstream_cut_off(&gateway, "acme", 1).await;
    let received = gateway.upstream.received("acme");
    assert_eq!(received.completed, 0);
    // Cut only once the client was past the hard limit. How far short of it the
    // upstream stops depends on how much Envoy held when the last check refused: the
    // filter lets a held chunk through whole or not at all.
    assert!(
        upload.body_bytes_sent > 400_000,
        "cut after {} bytes, short of the hard limit",
        upload.body_bytes_sent
    );
    assert!(
        received.bytes <= 400_000,
        "the upstream got {} bytes: past the quota and its overage",
        received.bytes
    );
    gateway
        .wait_usage("acme", "request_bytes", "month", received.bytes)
        .await
        .unwrap();
}
