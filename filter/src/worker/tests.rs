//! The worker against the fake host: requests acted on from other contexts' callbacks
//! (woken, decided from the root, answered by token, past their deadline), requests
//! that went away meanwhile, and what the root sends and retries.

use std::rc::Rc;

use serde_json::{json, Value};
use tollgate_protocol::{FilterConfig, LeaseRequest, PolicyStatus};

use super::shared::{SharedFlow, Worker};
use crate::flow::Next;
use crate::host::{Level, Metric};
use crate::testing::{FakeHost, ROOT};

/// A configured worker: the smallest config plus `extra` top-level members.
fn worker(extra: Value) -> Worker {
    let mut config = json!({"control_plane": {"cluster": "cp", "timeout_ms": 150}});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let worker = Worker::new(ROOT);
    let config = FilterConfig::from_json(config.to_string().as_bytes()).unwrap();
    worker.configure(Rc::new(config));
    worker
}

/// Opens request `context`, a `GET /x` of acme, and runs its headers callback.
fn get(host: &FakeHost, worker: &Worker, context: u32) -> (SharedFlow, Next) {
    host.open(
        context,
        &[(":path", "/x"), (":method", "GET"), ("x-tenant-id", "acme")],
    );
    let flow = worker.new_flow().unwrap();
    let next = worker.step(host, context, Some(&flow), Next::Continue, |flow| {
        flow.on_request_headers(host, true)
    });
    (flow, next)
}

/// Delivers `body` (status 200) as the answer to request `context`'s own callout.
fn answer(host: &FakeHost, worker: &Worker, context: u32, flow: &SharedFlow, body: &[u8]) {
    host.enter(context);
    host.deliver(Some(200), body);
    worker.on_answer(host, context, Some(flow), body.len());
}

/// Delivers `status` and `body` as the answer to the root's callout `token`.
fn answer_root(host: &FakeHost, worker: &Worker, token: u32, status: u32, body: &[u8]) {
    host.enter(ROOT);
    host.deliver(Some(status), body);
    worker.on_root_answer(host, token, body.len());
}

/// The root's tick.
fn tick(host: &FakeHost, worker: &Worker) {
    host.enter(ROOT);
    worker.on_tick(host);
}

fn lease(granted: u64) -> Vec<u8> {
    let policy = PolicyStatus {
        name: "monthly".into(),
        tenant: None,
        resource: "requests".into(),
        quota: 1000,
        limit: 1200,
        used: 10,
        remaining: 1190,
        reset_after_s: 3600,
        window_s: None,
    };
    serde_json::to_vec(&json!({
        "decision": "allow", "tenant": "acme", "granted": granted, "ttl_ms": 10_000,
        "policy": policy, "warn_after": 800
    }))
    .unwrap()
}

fn allow() -> Vec<u8> {
    br#"{"decision": "allow", "tenant": "acme"}"#.to_vec()
}

fn budgets() -> Value {
    json!({"budgets": {"enabled": true}})
}

/// Request 2 refilling acme's budget and request 3 of the same worker waiting for it.
fn refill_and_waiter(host: &FakeHost, worker: &Worker) -> (SharedFlow, SharedFlow) {
    let (refilling, next) = get(host, worker, 2);
    assert_eq!(next, Next::Pause);
    let (waiting, next) = get(host, worker, 3);
    assert_eq!(next, Next::Pause);
    assert_eq!(host.dispatched().len(), 1, "the waiter makes no callout");
    assert_eq!(host.counted(Metric::BudgetWaits), 1);
    (refilling, waiting)
}

#[test]
fn a_woken_request_is_resumed_in_its_own_context_and_the_callback_s_context_is_effective_again() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (refilling, _waiting) = refill_and_waiter(&host, &worker);
    answer(&host, &worker, 2, &refilling, &lease(5));
    assert_eq!(host.of(2).resumed, 1);
    assert_eq!(host.of(3).resumed, 1, "resumed in its own context");
    assert_eq!(host.current(), 2, "back in the callback's context");
    assert_eq!(host.counted(Metric::BudgetHits), 2);
    assert_eq!(host.dispatched().len(), 1, "paid from the new budget");
}

#[test]
fn a_woken_request_that_needs_a_callout_is_decided_from_the_root_and_answered_by_token() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (refilling, _waiting) = refill_and_waiter(&host, &worker);
    // One unit, which the refilling request spends: the waiter needs a refill of its
    // own, which it may not make from request 2's callback.
    answer(&host, &worker, 2, &refilling, &lease(1));
    assert_eq!(host.of(3).resumed, 0);
    assert_eq!(host.dispatched().len(), 1);

    tick(&host, &worker);
    let refill = host.last_dispatched();
    assert_eq!((refill.context, refill.path()), (ROOT, "/v1/leases"));
    assert_eq!(refill.effective, 3, "made as request 3's");
    assert_eq!(host.current(), ROOT);

    answer_root(&host, &worker, refill.token.unwrap(), 200, &lease(5));
    assert_eq!(host.of(3).resumed, 1, "the answer reached request 3");
    assert_eq!(host.current(), ROOT);
    assert_eq!(host.counted(Metric::BudgetHits), 2);
}

#[test]
fn an_answer_for_a_request_that_is_gone_reaches_nobody() {
    for forgotten in [false, true] {
        let host = FakeHost::default().at(1_000);
        let worker = worker(budgets());
        let (refilling, _waiting) = refill_and_waiter(&host, &worker);
        answer(&host, &worker, 2, &refilling, &lease(1));
        tick(&host, &worker);
        let token = host.last_dispatched().token.unwrap();
        // The client goes away: its context is gone (and, once Envoy drops it,
        // forgotten by the worker).
        host.close(3);
        if forgotten {
            worker.forget(3);
        }
        answer_root(&host, &worker, token, 200, &lease(5));
        assert_eq!(host.current(), ROOT, "forgotten: {forgotten}");
        assert_eq!(
            host.counted(Metric::BudgetHits),
            1,
            "forgotten: {forgotten}"
        );
        assert_eq!(host.counted(Metric::SettlementFailures), 0);
    }
}

#[test]
fn a_deferred_request_that_went_away_before_the_tick_makes_no_callout() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (refilling, waiting) = refill_and_waiter(&host, &worker);
    answer(&host, &worker, 2, &refilling, &lease(1));
    host.enter(3);
    worker.on_log(&host, 3, Some(&waiting));
    host.close(3);
    worker.forget(3);
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), 1);
    assert_eq!(host.current(), ROOT);
}

#[test]
fn a_deadline_past_in_the_tick_applies_the_failure_mode_in_the_request_s_context() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({"failure_mode": "closed"}));
    let (_flow, next) = get(&host, &worker, 2);
    assert_eq!(next, Next::Pause);
    let check = host.last_dispatched();
    assert_eq!((check.context, check.path()), (2, "/v1/check"));

    host.advance(149);
    tick(&host, &worker);
    assert!(host.of(2).replies.is_empty(), "not yet");
    host.advance(1);
    tick(&host, &worker);
    let replies = host.of(2).replies;
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [503]);
    assert_eq!(host.counted(Metric::CalloutTimeouts), 1);
    assert_eq!(host.current(), ROOT);
    // The check may have been counted: the same tick sends its take-back, as the root's.
    let take_back = host.last_dispatched();
    assert_eq!((take_back.context, take_back.path()), (ROOT, "/v1/release"));
}

#[test]
fn a_view_nobody_answers_is_503_at_its_deadline_whatever_the_failure_mode() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({"quota_path": "/.well-known/quota", "failure_mode": "open"}));
    host.open(
        2,
        &[
            (":path", "/.well-known/quota"),
            (":method", "GET"),
            ("x-tenant-id", "acme"),
        ],
    );
    let flow = worker.new_flow().unwrap();
    let next = worker.step(&host, 2, Some(&flow), Next::Continue, |flow| {
        flow.on_request_headers(&host, true)
    });
    assert_eq!(next, Next::Pause);
    assert_eq!(host.last_dispatched().path(), "/v1/quota");
    host.advance(150);
    tick(&host, &worker);
    let replies = host.of(2).replies;
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [503]);
    assert_eq!(host.of(2).resumed, 0);
    assert_eq!(host.counted(Metric::FailedOpen), 0);
    // Nothing to take back: the view counted nothing.
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), 1);
}

#[test]
fn a_deadline_of_a_request_that_is_gone_is_skipped() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({"failure_mode": "closed"}));
    get(&host, &worker, 2);
    host.close(2);
    host.advance(1_000);
    tick(&host, &worker);
    assert_eq!(host.counted(Metric::CalloutTimeouts), 0);
    assert_eq!(host.current(), ROOT);
}

#[test]
fn a_settlement_is_sent_by_the_root_and_retried_until_it_is_answered() {
    let host = FakeHost::default().at(1_000);
    // A hold is always settled (released), whatever the request cost.
    let worker = worker(json!({"costs": {"concurrent_requests": true}}));
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &allow());
    worker.on_log(&host, 2, Some(&flow));
    assert_eq!(host.dispatched().len(), 1, "not from the request's context");

    tick(&host, &worker);
    let settle = host.last_dispatched();
    assert_eq!((settle.context, settle.path()), (ROOT, "/v1/settle"));
    answer_root(&host, &worker, settle.token.unwrap(), 503, b"");
    assert_eq!(host.counted(Metric::SettlementFailures), 1);

    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), 2, "backing off");
    host.advance(200);
    tick(&host, &worker);
    let again = host.last_dispatched();
    assert_eq!((again.path(), &again.body), ("/v1/settle", &settle.body));
    answer_root(&host, &worker, again.token.unwrap(), 200, b"{}");
    host.advance(60_000);
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), 3, "settled");
    assert_eq!(host.counted(Metric::Settlements), 2);
}

#[test]
fn an_expired_lease_is_returned_in_the_tick_with_what_was_spent() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &lease(5));
    let lease_id = host.last_dispatched().json::<LeaseRequest>().id;

    host.advance(9_999);
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), 1, "not expired yet");
    host.advance(1);
    tick(&host, &worker);
    let back: LeaseRequest = host.last_dispatched().json();
    assert_eq!(host.last_dispatched().context, ROOT);
    assert_eq!(back.want, 0);
    let previous = back.previous.unwrap();
    assert_eq!((previous.id, previous.spent), (lease_id, 1));
}

#[test]
fn a_closing_worker_returns_its_leases_and_is_done_once_they_are_answered() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &lease(5));

    host.enter(ROOT);
    assert!(!worker.on_done(&host), "waits for the return's answer");
    let back = host.last_dispatched();
    assert_eq!((back.context, back.path()), (ROOT, "/v1/leases"));
    let log = host.logged(Level::Info);
    assert_eq!(log, ["tollgate: closing, returning 1 leases"]);
    assert_eq!(host.done_calls(), 0);
    answer_root(&host, &worker, back.token.unwrap(), 200, b"{}");
    assert_eq!(host.done_calls(), 1);
    assert_eq!(host.logged(Level::Info).last().unwrap(), "tollgate: closed");

    // Nothing to return: done at once.
    let idle = self::worker(budgets());
    assert!(idle.on_done(&host));
}

#[test]
fn a_closing_worker_without_answers_is_done_when_its_grace_is_over() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &lease(5));
    host.enter(ROOT);
    assert!(!worker.on_done(&host));
    host.advance(1_999);
    tick(&host, &worker);
    assert_eq!(host.done_calls(), 0);
    host.advance(1);
    tick(&host, &worker);
    assert_eq!(host.done_calls(), 1);
}

#[test]
fn a_re_entrant_callback_is_skipped_not_a_panic() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({}));
    let (flow, _) = get(&host, &worker, 2);
    let inner = worker.step(&host, 2, Some(&flow), None, |_| {
        Some(worker.step(&host, 2, Some(&flow), "skipped", |_| "ran"))
    });
    assert_eq!(inner, Some("skipped"));
    assert_eq!(worker.step(&host, 2, None, "no flow", |_| "ran"), "no flow");
}

#[test]
fn a_control_plane_answering_404_is_logged_once_per_worker_and_counted_every_time() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({"failure_mode": "open"}));
    for context in [2, 3] {
        let (flow, _) = get(&host, &worker, context);
        host.enter(context);
        host.deliver(Some(404), b"{}");
        worker.on_answer(&host, context, Some(&flow), 2);
        assert_eq!(
            host.of(context).resumed,
            1,
            "the failure mode still applies"
        );
    }
    assert_eq!(host.counted(Metric::ControlPlaneMisconfigured), 2);
    assert_eq!(host.counted(Metric::FailedOpen), 2);
    assert_eq!(host.counted(Metric::CalloutFailures), 2);
    let errors = host.logged(Level::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "tollgate: the control plane answered 404 to /v1/check: is control_plane.cluster \
             pointing at the decision listener (--decision-listen)?"
        ),
        "{errors:?}"
    );
    // Another config (another worker) logs it again.
    let replaced = self::worker(json!({}));
    let (flow, _) = get(&host, &replaced, 4);
    host.deliver(Some(404), b"{}");
    replaced.on_answer(&host, 4, Some(&flow), 2);
    assert_eq!(host.logged(Level::Error).len(), 2);
}

#[test]
fn a_settlement_answered_401_names_the_token_and_is_retried() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({
        "control_plane": {"cluster": "cp", "timeout_ms": 150, "token": "wrong"},
        "costs": {"concurrent_requests": true}
    }));
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &allow());
    worker.on_log(&host, 2, Some(&flow));
    tick(&host, &worker);
    let settle = host.last_dispatched();
    answer_root(&host, &worker, settle.token.unwrap(), 401, b"{}");
    assert_eq!(host.counted(Metric::ControlPlaneMisconfigured), 1);
    assert_eq!(
        host.counted(Metric::SettlementFailures),
        1,
        "retried as before"
    );
    let errors = host.logged(Level::Error);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(
        "tollgate: the control plane answered 401 to /v1/settle: control_plane.token does not \
         match the control plane's --decision-token"
    ));
}

#[test]
fn a_lease_answered_404_counts_as_misconfigured_and_fails_the_refill() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(json!({"budgets": {"enabled": true}, "failure_mode": "closed"}));
    let (flow, _) = get(&host, &worker, 2);
    host.deliver(Some(404), b"{}");
    worker.on_answer(&host, 2, Some(&flow), 2);
    assert_eq!(host.of(2).replies[0].0, 503);
    assert_eq!(host.counted(Metric::ControlPlaneMisconfigured), 1);
    assert!(host.logged(Level::Error)[0].contains("answered 404 to /v1/leases"));
}

/// The slot key of acme's `requests` budget (the requests of [`get`]).
fn acme_slot() -> String {
    crate::budget::slot_key(&crate::budget::Owner {
        tenant: "acme".into(),
        roles: Vec::new(),
        resource: "requests".into(),
    })
}

#[test]
fn a_lease_granted_while_its_slot_is_busy_is_given_back_and_the_request_checked() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (flow, _) = get(&host, &worker, 2);
    let lease_id = host.last_dispatched().json::<LeaseRequest>().id;
    // Other workers write the slot before each of the refill's attempts to land.
    host.interfere(&acme_slot(), 16);
    answer(&host, &worker, 2, &flow, &lease(5));
    assert_eq!(host.counted(Metric::LeasesRecovered), 1);
    let check = host.last_dispatched();
    assert_eq!(check.path(), "/v1/check", "checked instead");

    tick(&host, &worker);
    let back: LeaseRequest = host.last_dispatched().json();
    assert_eq!(host.last_dispatched().context, ROOT);
    let previous = back.previous.unwrap();
    assert_eq!((previous.id, previous.spent, back.want), (lease_id, 0, 0));
    // It is not among the worker's leases: its expiry returns nothing more.
    let sent = host.dispatched().len();
    host.advance(20_000);
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), sent);
}

#[test]
fn an_expired_lease_whose_slot_is_busy_is_returned_on_a_later_tick() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let (flow, _) = get(&host, &worker, 2);
    answer(&host, &worker, 2, &flow, &lease(5));
    let lease_id = host.last_dispatched().json::<LeaseRequest>().id;
    let sent = host.dispatched().len();

    host.advance(10_000);
    host.interfere(&acme_slot(), 16);
    tick(&host, &worker);
    assert_eq!(host.dispatched().len(), sent, "still in its slot");
    assert_eq!(host.counted(Metric::BudgetContention), 1);
    tick(&host, &worker);
    let back: LeaseRequest = host.last_dispatched().json();
    let previous = back.previous.unwrap();
    assert_eq!((previous.id, previous.spent), (lease_id, 1));
}

#[test]
fn a_return_dropped_from_a_full_queue_is_counted_and_logged() {
    let host = FakeHost::default().at(1_000);
    let worker = worker(budgets());
    let give_back = |n: usize| LeaseRequest {
        id: format!("r-{n}"),
        gateway: "g".into(),
        tenant: "acme".into(),
        roles: Vec::new(),
        resource: "requests".into(),
        want: 0,
        previous: None,
    };
    for n in 0..super::settlements::MAX_QUEUED {
        worker.outbox.give_back(&host, &give_back(n));
    }
    assert_eq!(host.counted(Metric::ReturnsDropped), 0);
    worker
        .outbox
        .give_back(&host, &give_back(super::settlements::MAX_QUEUED));
    assert_eq!(host.counted(Metric::ReturnsDropped), 1);
    let warnings = host.warnings();
    assert!(
        warnings.last().is_some_and(|w| w.contains("r-0")),
        "the oldest, named: {warnings:?}"
    );
}
