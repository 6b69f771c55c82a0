//! The hierarchy rules, checked inside the admin write transaction (after the
//! write, before the commit) so that a write breaking one is rolled back whole:
//! - a tree is at most [`MAX_DEPTH`] levels deep, and has no cycles;
//! - the quotas a parent's children are given may sum past the parent's own quota on the
//!   same resource and span by at most its overcommit ratio.
//!
//! For overcommit a tenant's limits are what is its own — its direct assignment or own
//! tier, with its overrides — never roles or the default tier, which depend on the
//! request. Unlimited limits are bounded by their parent anyway and are not summed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::catalog::{level_from_row, level_json_columns};
use super::error::RepoError;
use super::limit_rows::{limit_from_row, LIMIT_COLUMNS};
use crate::model::resolve::resolve_level;
use crate::model::{Catalog, LimitOwner, Ppm, MAX_DEPTH};

/// Refuses to put `tenant` (with its subtree) under `parent` when that would make a
/// cycle or a tree deeper than [`MAX_DEPTH`].
pub(super) async fn check_depth(
    conn: &mut PgConnection,
    tenant: &str,
    parent: &str,
) -> Result<(), RepoError> {
    let ancestors: Vec<(String, i32)> = sqlx::query_as(
        "WITH RECURSIVE up (id, parent_id, n) AS ( \
             SELECT id, parent_id, 1 FROM tenants WHERE id = $1 \
             UNION ALL \
             SELECT t.id, t.parent_id, up.n + 1 FROM tenants t JOIN up ON t.id = up.parent_id \
             WHERE up.n < 16) \
         SELECT id, n FROM up",
    )
    .bind(parent)
    .fetch_all(&mut *conn)
    .await?;
    if ancestors.iter().any(|(id, _)| id == tenant) {
        return Err(RepoError::Conflict(format!(
            "parent_id: {parent} is {tenant} or one of its descendants; that would make a cycle"
        )));
    }
    let parent_depth = ancestors.iter().map(|(_, n)| *n).max().unwrap_or(1);
    let height: i32 = sqlx::query_scalar(
        "WITH RECURSIVE down (id, n) AS ( \
             SELECT id, 1 FROM tenants WHERE id = $1 \
             UNION ALL \
             SELECT t.id, down.n + 1 FROM tenants t JOIN down ON t.parent_id = down.id \
             WHERE down.n < 16) \
         SELECT COALESCE(max(n), 1) FROM down",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    let depth = parent_depth + height;
    if depth > MAX_DEPTH as i32 {
        return Err(RepoError::Conflict(format!(
            "parent_id: under {parent} the tree would be {depth} levels deep; at most {MAX_DEPTH} are allowed"
        )));
    }
    Ok(())
}

/// The parents whose overcommit a change of `tenant`'s own limits can break: its parent,
/// and itself when it has children.
pub(super) async fn parents_affected_by_tenant(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<Vec<String>, RepoError> {
    Ok(sqlx::query_scalar(
        "SELECT parent_id FROM tenants WHERE id = $1 AND parent_id IS NOT NULL \
         UNION SELECT $1 WHERE EXISTS (SELECT 1 FROM tenants WHERE parent_id = $1)",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

/// The parents whose overcommit a change of `tier`'s limits can break: the parents of
/// tenants on that tier, and those tenants themselves when they have children.
pub(super) async fn parents_affected_by_tier(
    conn: &mut PgConnection,
    tier: &str,
) -> Result<Vec<String>, RepoError> {
    Ok(sqlx::query_scalar(
        "WITH on_tier AS ( \
             SELECT id, parent_id FROM tenants t WHERE t.tier = $1 \
                OR EXISTS (SELECT 1 FROM assignments a WHERE a.tenant_id = t.id AND a.tier = $1)) \
         SELECT parent_id FROM on_tier WHERE parent_id IS NOT NULL \
         UNION SELECT o.id FROM on_tier o WHERE EXISTS (SELECT 1 FROM tenants c WHERE c.parent_id = o.id)",
    )
    .bind(tier)
    .fetch_all(conn)
    .await?)
}

/// Refuses the transaction's state if the children of one of `parents` are given more
/// than the parent's quota times its overcommit ratio, on any resource and span.
pub(super) async fn check_overcommit(
    conn: &mut PgConnection,
    parents: &[String],
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    if parents.is_empty() {
        return Ok(());
    }
    // Overcommit is of quotas: the levels' grants (read with them) play no part.
    let rows = sqlx::query(&format!(
        "SELECT c.id, c.parent_id, c.tier, c.mode, c.overcommit_ppm, {} \
         FROM tenants c WHERE c.id = ANY($1) OR c.parent_id = ANY($1)",
        level_json_columns("$2")
    ))
    .bind(parents)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut levels = Vec::with_capacity(rows.len());
    let mut tiers = HashSet::new();
    for row in &rows {
        let level = level_from_row(row)?;
        let parent_id: Option<String> = row.try_get("parent_id")?;
        let overcommit = Ppm(u64::try_from(row.try_get::<i64, _>("overcommit_ppm")?).unwrap_or(0));
        tiers.extend(level.tier.clone());
        tiers.extend(level.assignments.iter().map(|a| a.tier.clone()));
        levels.push((level, parent_id, overcommit));
    }
    let tiers: Vec<String> = tiers.into_iter().collect();
    let mut catalog = Catalog::default();
    for row in sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits WHERE tier = ANY($1)"
    ))
    .bind(&tiers)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    {
        let limit = limit_from_row(row)?;
        if let LimitOwner::Tier(tier) = limit.owner {
            catalog.tiers.entry(tier).or_default().push(limit.def);
        }
    }
    let resolved: HashMap<&str, _> = levels
        .iter()
        .map(|(level, _, _)| (level.id.as_str(), resolve_level(&catalog, level, None, now)))
        .collect();
    for parent in parents {
        let Some((_, _, ratio)) = levels.iter().find(|(l, _, _)| &l.id == parent) else {
            continue;
        };
        let Some(own) = resolved.get(parent.as_str()) else {
            continue;
        };
        let children: Vec<_> = levels
            .iter()
            .filter(|(_, p, _)| p.as_deref() == Some(parent.as_str()))
            .filter_map(|(level, _, _)| resolved.get(level.id.as_str()))
            .collect();
        for limit in own.limits.iter().filter(|l| !l.limit.unlimited) {
            let given: u128 = children
                .iter()
                .flat_map(|child| child.limits.iter())
                .filter(|c| c.slot() == limit.slot() && !c.limit.unlimited)
                .map(|c| u128::from(c.limit.quota))
                .sum();
            if given * 1_000_000 > u128::from(ratio.0) * u128::from(limit.limit.quota) {
                return Err(RepoError::Conflict(format!(
                    "overcommit: the children of {parent} would be given {given} {} per {} ({} window) \
                     against its quota of {} with overcommit ratio {}",
                    limit.resource,
                    limit.span.period_name(),
                    limit.span.window_kind(),
                    limit.limit.quota,
                    ratio.ratio()
                )));
            }
        }
    }
    Ok(())
}
