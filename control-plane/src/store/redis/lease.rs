//! A lease's return and the next budget (`lease.lua`).

use super::replies::parse_budget_reply;
use super::store::RedisStore;
use crate::store::call::OpKind;
use crate::store::error::StoreError;
use crate::store::keys::{lease_holder, MARKER_TTL_S};
use crate::store::lease::{LeaseCall, LeaseReply};
use crate::store::validate::validate_lease;

impl RedisStore {
    pub(super) async fn lease_call(&self, budget: &LeaseCall) -> Result<LeaseReply, StoreError> {
        validate_lease(budget)?;
        let mut script = self.scripts.lease.prepare_invoke();
        for marker in &budget.markers {
            script.key(marker);
        }
        let mut op_args: Vec<(usize, usize, u64, i64, usize)> = Vec::new();
        let mut next_key = budget.markers.len() + 1;
        for op in &budget.ops {
            let OpKind::Window {
                keys,
                ttl_s,
                marker,
            } = &op.kind
            else {
                return Err(StoreError::Invalid("a gauge cannot be budgeted".into()));
            };
            op_args.push((
                next_key,
                keys.len(),
                op.cap,
                (*ttl_s).max(1),
                marker.map_or(0, |m| m + 1),
            ));
            for key in keys {
                script.key(key);
            }
            next_key += keys.len();
        }
        script.key(&budget.record_key);
        for level in &budget.levels {
            script.key(&level.holders_key);
        }
        if let Some(previous) = &budget.previous {
            script.key(&previous.record_key);
        }
        script
            .arg(budget.markers.len())
            .arg(MARKER_TTL_S)
            .arg(budget.ops.len())
            .arg(budget.now_ms)
            .arg(budget.want)
            .arg(budget.min_grant)
            .arg(budget.ttl_ms)
            .arg(budget.record_ttl_ms.max(1))
            .arg(&budget.gateway)
            .arg(
                budget
                    .previous
                    .as_ref()
                    .map(|p| p.spent.to_string())
                    .unwrap_or_default(),
            )
            .arg(lease_holder(&budget.gateway, &budget.tenant))
            .arg(budget.levels.len())
            .arg(budget.deadline_ms.unwrap_or(0).max(0));
        for (first, count, cap, ttl_s, marker) in op_args {
            script.arg(first).arg(count).arg(cap).arg(ttl_s).arg(marker);
        }
        for level in &budget.levels {
            script.arg(level.ops.len());
            for &op in &level.ops {
                script.arg(op + 1);
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        parse_budget_reply(&reply, budget.ops.len())
    }
}
