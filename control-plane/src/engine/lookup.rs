//! The first step of every decision: what applies to the tenant, from the cached
//! definitions, within the caller's deadline — no check waits on PostgreSQL longer than
//! the filter waits for the check.
//!
//! When a chain that is not cached cannot be loaded — PostgreSQL fails, or has not
//! answered by half the deadline — the tenant directory (`definitions/directory.rs`)
//! builds it instead, with the catalog as last cached, and the rest of the deadline is
//! left for counting. While loads are failing, lookups do not wait for PostgreSQL at all
//! before asking the directory. The directory is never read while PostgreSQL answers in
//! time, and a tenant it does not hold is answered as before (a 503 while PostgreSQL is
//! down).

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;

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
        Freshness::Directory => "directory",
    };
    engine
        .metrics
        .definition_cache
        .with_label_values(&[result])
        .inc();
}

fn count_postgres_error(engine: &Engine) {
    engine
        .metrics
        .store_errors
        .with_label_values(&["postgres"])
        .inc();
}

fn unavailable(engine: &Engine, error: LoadError) -> ApiError {
    count_postgres_error(engine);
    ApiError::Unavailable {
        store: "postgres",
        source: Box::new(error),
    }
}

fn timed_out() -> ApiError {
    ApiError::unavailable("postgres", "no quota definitions within the deadline")
}

/// The cached definitions of `tenant`, within `deadline`: no check waits on PostgreSQL
/// longer than the filter waits for the check.
pub(super) async fn cached_definitions(
    engine: &Engine,
    tenant: &str,
    deadline: Deadline,
) -> Result<(Arc<Catalog>, Option<Arc<Chain>>), ApiError> {
    // The catalog as this lookup got it, should the directory have to decide with it.
    let got_catalog = OnceLock::new();
    let lookup = async {
        let (mut catalog, catalog_freshness) = engine.definitions.catalog(&engine.repo).await?;
        count_lookup(engine, catalog_freshness);
        let _ = got_catalog.set(catalog.clone());
        let (chain, chain_freshness) = engine
            .definitions
            .chain(&engine.repo, tenant, engine.now())
            .await?;
        count_lookup(engine, chain_freshness);
        // A chain naming a tier the catalog does not know proves the catalog older than
        // the chain (the tier was created since): reload it rather than decide without
        // the tier's limits.
        if chain
            .as_deref()
            .is_some_and(|c| names_unknown_tier(c, &catalog))
        {
            engine.definitions.mark_catalog();
            let (reloaded, freshness) = engine.definitions.catalog(&engine.repo).await?;
            count_lookup(engine, freshness);
            catalog = reloaded;
        }
        Ok::<_, LoadError>((catalog, chain))
    };
    let mut lookup = std::pin::pin!(lookup);
    // Cached definitions are at hand at once; a load gets half the deadline, none while
    // loads are failing, before the directory is asked.
    let early = if engine.definitions.loads_failing() {
        lookup.as_mut().now_or_never()
    } else {
        deadline.halfway().bound(lookup.as_mut()).await
    };
    let failed = match early {
        Some(Ok(found)) => return Ok(found),
        Some(Err(error)) if !error.postgres_failed() => return Err(unavailable(engine, error)),
        Some(Err(error)) => Some(error),
        None => None,
    };
    if let Some(found) = from_directory(engine, tenant, got_catalog.get().cloned()).await {
        if failed.is_some() {
            count_postgres_error(engine);
        }
        return Ok(found);
    }
    if let Some(error) = failed {
        return Err(unavailable(engine, error));
    }
    match deadline.bound(lookup).await {
        Some(Ok(found)) => Ok(found),
        Some(Err(error)) => Err(unavailable(engine, error)),
        None => Err(timed_out()),
    }
}

/// The definitions of `tenant` from the tenant directory, with `catalog` (the one the
/// failed lookup got, else the one last cached): `None` when the directory does not hold
/// the tenant's whole chain, no catalog was ever loaded, or the chain names a tier the
/// catalog does not know — that tier's limits would be missing, and the catalog cannot
/// be reloaded now.
async fn from_directory(
    engine: &Engine,
    tenant: &str,
    catalog: Option<Arc<Catalog>>,
) -> Option<(Arc<Catalog>, Option<Arc<Chain>>)> {
    let chain = engine.definitions.directory().chain(tenant)?;
    let (catalog, held) = match catalog {
        Some(catalog) => (catalog, false),
        None => (engine.definitions.held_catalog().await?, true),
    };
    if names_unknown_tier(&chain, &catalog) {
        return None;
    }
    if held {
        count_lookup(engine, Freshness::Fallback);
    }
    count_lookup(engine, Freshness::Directory);
    Some((catalog, Some(Arc::new(chain))))
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
    let now = engine.now();
    let chain = engine
        .repo
        .load_chain(tenant, now)
        .await
        .map_err(|e| engine.postgres_error(e))?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))?;
    let resolved = resolve(&catalog, Some(&chain), tenant, roles, now)
        .ok_or_else(|| ApiError::internal("a known tenant always resolves"))?;
    Ok((resolved, Arc::new(chain)))
}
