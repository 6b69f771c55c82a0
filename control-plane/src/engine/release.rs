//! `POST /v1/release`: give back every gauge slot a request holds, and with `refund`
//! what its check counted too (the filter refused the request after all, or its client
//! went away). Idempotent.

use std::sync::atomic::Ordering;

use tollgate_protocol::{ReleaseRequest, ReleaseResponse};

use super::count::redis_call;
use super::deadline::Deadline;
use super::fallback;
use super::lookup::cached_definitions;
use super::state::Engine;
use super::validate::validate_release;
use crate::error::ApiError;
use crate::model::Chain;
use crate::store::{check_record_key, hold_record_key, Counter};

/// Gives back every gauge slot a request holds, and with `refund` what its check
/// counted too (the filter refused the request after all). Idempotent.
pub async fn release(
    engine: &Engine,
    request: &ReleaseRequest,
    deadline: Deadline,
) -> Result<ReleaseResponse, ApiError> {
    validate_release(request)?;
    let (_, chain) = cached_definitions(engine, &request.tenant, deadline).await?;
    let root = chain
        .as_deref()
        .and_then(Chain::root)
        .unwrap_or(&request.tenant);
    let id = &request.request_id;
    let (released, refunded) = if request.refund {
        cancel_check(engine, root, id, deadline).await?
    } else {
        let record = hold_record_key(root, id);
        let released = redis_call(engine, deadline, engine.store.release(&record, id))
            .await
            .map_err(|e| engine.redis_error(e))?;
        (released, 0)
    };
    engine.metrics.releases.inc_by(released);
    Ok(ReleaseResponse { released, refunded })
}

/// Takes back the check of request `id` in tenant tree `root`: its gauge slots and what
/// it counted, in Redis, or in PostgreSQL when the check was counted there during an
/// outage. Answers the slots released and the units taken back.
async fn cancel_check(
    engine: &Engine,
    root: &str,
    id: &str,
    deadline: Deadline,
) -> Result<(u64, u64), ApiError> {
    let check = check_record_key(root, id);
    let record = hold_record_key(root, id);
    let (released, refunded) =
        match redis_call(engine, deadline, engine.store.cancel(&record, &check, id)).await {
            Ok(cancelled) => {
                let counters: Vec<_> = (cancelled.keys.iter())
                    .filter_map(|key| Counter::from_key(key))
                    .collect();
                engine.flusher.touch_counters(&counters);
                let refunded =
                    if cancelled.refunded > 0 || !engine.fallback_checks.load(Ordering::Relaxed) {
                        cancelled.refunded
                    } else {
                        // Not counted in Redis: perhaps in PostgreSQL, during an outage that
                        // has ended. If PostgreSQL cannot say, the answer is an error: the
                        // filter sends the take-back again (what Redis released stays
                        // released; a take-back is idempotent), where "refunded 0" would
                        // leave that check counted.
                        fallback::cancel(engine, &check, deadline)
                            .await?
                            .unwrap_or(0)
                    };
                (cancelled.released, refunded)
            }
            Err(e) => {
                let error = engine.redis_error(e);
                if !fallback::redis_down(engine, &error) {
                    return Err(error);
                }
                // A check counted in PostgreSQL took no gauge slot; one counted in Redis
                // before the outage is taken back there once it is back (the filter
                // retries).
                match fallback::cancel(engine, &check, deadline).await? {
                    Some(refunded) => (0, refunded),
                    None => return Err(error),
                }
            }
        };
    engine.metrics.check_refunds.inc_by(refunded);
    Ok((released, refunded))
}
