//! Queries over `tiers` (and their limits, as a unit).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::connection::QuotaRepo;
use super::error::RepoError;
use super::events::NewEvent;
use super::limit_rows::{limit_from_row, LIMIT_COLUMNS};
use super::page::{Page, Paging};
use super::{limits, rules};
use crate::model::views::{to_json, TierView};
use crate::model::{LimitDef, LimitOwner, Tier};

/// A tier to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTier {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its limits, distinct by resource and span.
    pub limits: Vec<LimitDef>,
}

/// A change to a tier; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierPatch {
    /// A new description.
    pub description: Option<String>,
    /// The complete new set of limits: limits on the same resource and span keep their
    /// id and are updated, others are added, and the ones not listed are removed.
    pub limits: Option<Vec<LimitDef>>,
}

const TIER_COLUMNS: &str = "name, description, created_at, updated_at";

fn tier_from_row(row: &PgRow) -> Result<Tier, RepoError> {
    Ok(Tier {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        limits: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn get_in(conn: &mut PgConnection, name: &str) -> Result<Option<Tier>, RepoError> {
    let Some(row) = sqlx::query(&format!("SELECT {TIER_COLUMNS} FROM tiers WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut tier = tier_from_row(&row)?;
    tier.limits = limits::of_owner(conn, &LimitOwner::Tier(name.to_string())).await?;
    Ok(Some(tier))
}

impl QuotaRepo {
    /// Creates a tier and its limits in one transaction: all or nothing.
    pub async fn create_tier(&self, actor: &str, new: &NewTier) -> Result<Tier, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let created = sqlx::query(
            "INSERT INTO tiers (name, description) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING name",
        )
        .bind(&new.name)
        .bind(&new.description)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if created.is_none() {
            return Err(RepoError::Conflict(format!(
                "tier {} already exists",
                new.name
            )));
        }
        let owner = LimitOwner::Tier(new.name.clone());
        for def in &new.limits {
            limits::insert(&mut tx.tx, &owner, def).await?;
        }
        let tier = get_in(&mut tx.tx, &new.name)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tier {}", new.name)))?;
        let after = to_json(&TierView::from(&tier));
        tx.commit(NewEvent::change(
            "tier.created",
            format!("tier/{}", tier.name),
            None,
            None,
            Some(after),
        ))
        .await?;
        Ok(tier)
    }

    /// The tier named `name` with its limits.
    pub async fn get_tier(&self, name: &str) -> Result<Tier, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, name)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tier {name}")))
    }

    /// Tiers by name, with their limits.
    pub async fn list_tiers(&self, paging: &Paging) -> Result<Page<Tier>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {TIER_COLUMNS} FROM tiers WHERE ($1::text IS NULL OR name > $1) \
             ORDER BY name LIMIT $2"
        ))
        .bind(&paging.after)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut tiers = rows
            .iter()
            .map(tier_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = tiers.iter().map(|t| t.name.clone()).collect();
        let limit_rows = sqlx::query(&format!(
            "SELECT {LIMIT_COLUMNS} FROM limits WHERE tier = ANY($1) ORDER BY id"
        ))
        .bind(&names)
        .fetch_all(&self.pool)
        .await?;
        let mut by_tier: HashMap<String, Vec<_>> = HashMap::new();
        for row in &limit_rows {
            let limit = limit_from_row(row)?;
            if let LimitOwner::Tier(tier) = &limit.owner {
                by_tier.entry(tier.clone()).or_default().push(limit);
            }
        }
        for tier in &mut tiers {
            tier.limits = by_tier.remove(&tier.name).unwrap_or_default();
        }
        Ok(Page::from_rows(tiers, paging.limit, |t| t.name.clone()))
    }

    /// Changes a tier's description and/or its whole set of limits.
    pub async fn update_tier(
        &self,
        actor: &str,
        name: &str,
        patch: &TierPatch,
        now: DateTime<Utc>,
    ) -> Result<Tier, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, name)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tier {name}")))?;
        if let Some(description) = &patch.description {
            sqlx::query("UPDATE tiers SET description = $2, updated_at = now() WHERE name = $1")
                .bind(name)
                .bind(description)
                .execute(&mut *tx.tx)
                .await?;
        }
        if let Some(wanted) = &patch.limits {
            let owner = LimitOwner::Tier(name.to_string());
            for old in &before.limits {
                if !wanted.iter().any(|w| w.slot() == old.def.slot()) {
                    sqlx::query("DELETE FROM limits WHERE id = $1")
                        .bind(old.id)
                        .execute(&mut *tx.tx)
                        .await?;
                }
            }
            for def in wanted {
                match before
                    .limits
                    .iter()
                    .find(|old| old.def.slot() == def.slot())
                {
                    Some(old) if &old.def == def => {}
                    Some(old) => {
                        limits::update(&mut tx.tx, old.id, def).await?;
                    }
                    None => {
                        limits::insert(&mut tx.tx, &owner, def).await?;
                    }
                }
            }
            sqlx::query("UPDATE tiers SET updated_at = now() WHERE name = $1")
                .bind(name)
                .execute(&mut *tx.tx)
                .await?;
            let parents = rules::parents_affected_by_tier(&mut tx.tx, name).await?;
            rules::check_overcommit(&mut tx.tx, &parents, now).await?;
        }
        let after = get_in(&mut tx.tx, name)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tier {name}")))?;
        tx.commit(NewEvent::change(
            "tier.updated",
            format!("tier/{name}"),
            None,
            Some(to_json(&TierView::from(&before))),
            Some(to_json(&TierView::from(&after))),
        ))
        .await?;
        Ok(after)
    }

    /// Deletes a tier and its limits; refused while a tenant or an assignment uses it.
    pub async fn delete_tier(&self, actor: &str, name: &str) -> Result<Tier, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, name)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tier {name}")))?;
        let (tenants, assignments): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenants WHERE tier = $1), \
                    (SELECT count(*) FROM assignments WHERE tier = $1)",
        )
        .bind(name)
        .fetch_one(&mut *tx.tx)
        .await?;
        if tenants > 0 || assignments > 0 {
            return Err(RepoError::Conflict(format!(
                "tier {name} is in use by {tenants} tenant(s) and {assignments} assignment(s)"
            )));
        }
        sqlx::query("DELETE FROM tiers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit(NewEvent::change(
            "tier.deleted",
            format!("tier/{name}"),
            None,
            Some(to_json(&TierView::from(&before))),
            None,
        ))
        .await?;
        Ok(before)
    }
}
