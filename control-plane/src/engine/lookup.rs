//! The first step of every decision: what applies to the tenant, from the cached
//! definitions, within the caller's deadline — no check waits on PostgreSQL longer than
//! the filter waits for the check.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::deadline::Deadline;
use super::definitions::{Freshness, LoadError};
use super::state::Engine;
use crate::error::ApiError;
use crate::model::resolve::{resolve, Resolved};
use crate::model::{Catalog, Chain};

fn count_lookup(engine: &Engine, freshness: Freshness) {
    let result = match freshness {
        Freshness::Hit => "hit",
        Freshness::Miss => "miss",
        Freshness::Stale => "stale",
        Freshness::Fallback => "fallback",
    };
    engine
        .metrics
        .definition_cache
        .with_label_values(&[result])
        .inc();
}

/// The cached definitions of `tenant`, within `deadline`: no check waits on PostgreSQL
/// longer than the filter waits for the check.
pub(super) async fn cached_definitions(
    engine: &Engine,
    tenant: &str,
    deadline: Deadline,
) -> Result<(Arc<Catalog>, Option<Arc<Chain>>), ApiError> {
    let lookup = async {
        let (mut catalog, catalog_freshness) = engine.definitions.catalog(&engine.repo).await?;
        let (chain, chain_freshness) = engine.definitions.chain(&engine.repo, tenant).await?;
        count_lookup(engine, catalog_freshness);
        count_lookup(engine, chain_freshness);
        // A chain naming a tier the catalog does not know proves the catalog older than
        // the chain (the tier was created since): reload it rather than decide without
        // the tier's limits.
        if chain
            .as_deref()
            .is_some_and(|c| names_unknown_tier(c, &catalog))
        {
            engine.definitions.invalidate_catalog();
            let (reloaded, freshness) = engine.definitions.catalog(&engine.repo).await?;
            count_lookup(engine, freshness);
            catalog = reloaded;
        }
        Ok::<_, LoadError>((catalog, chain))
    };
    match deadline.bound(lookup).await {
        Some(Ok(found)) => Ok(found),
        Some(Err(error)) => {
            engine
                .metrics
                .store_errors
                .with_label_values(&["postgres"])
                .inc();
            Err(ApiError::Unavailable {
                store: "postgres",
                source: Box::new(error),
            })
        }
        None => Err(ApiError::unavailable(
            "postgres",
            "no quota definitions within the deadline",
        )),
    }
}

/// Whether a level of `chain` names a tier `catalog` does not have.
fn names_unknown_tier(chain: &Chain, catalog: &Catalog) -> bool {
    chain.levels.iter().any(|level| {
        level
            .tier
            .iter()
            .chain(level.assignments.iter().map(|a| &a.tier))
            .any(|tier| !catalog.tiers.contains_key(tier))
    })
}

/// What applies to `tenant` with `roles`, from the cached definitions (within
/// `deadline`), and the instant it was resolved at, which the store call is planned at;
/// `None` when no tier applies to the tenant.
pub(super) async fn resolve_cached(
    engine: &Engine,
    tenant: &str,
    roles: &[String],
    deadline: Deadline,
) -> Result<Option<(Resolved, DateTime<Utc>)>, ApiError> {
    let (catalog, chain) = cached_definitions(engine, tenant, deadline).await?;
    let now = engine.now();
    Ok(resolve(&catalog, chain.as_deref(), tenant, roles, now).map(|resolved| (resolved, now)))
}

/// The resolved definitions of a known tenant, read from PostgreSQL now (not from the
/// cache): the admin API shows what was just written.
pub async fn resolve_fresh(
    engine: &Engine,
    tenant: &str,
    roles: &[String],
) -> Result<(Resolved, Arc<Chain>), ApiError> {
    let catalog = engine
        .repo
        .load_catalog()
        .await
        .map_err(|e| engine.postgres_error(e))?;
    let chain = engine
        .repo
        .load_chain(tenant)
        .await
        .map_err(|e| engine.postgres_error(e))?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))?;
    let resolved = resolve(&catalog, Some(&chain), tenant, roles, engine.now())
        .ok_or_else(|| ApiError::internal("a known tenant always resolves"))?;
    Ok((resolved, Arc::new(chain)))
}
