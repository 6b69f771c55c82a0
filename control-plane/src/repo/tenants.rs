//! Queries over `tenants`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::connection::QuotaRepo;
use super::error::{unique_as_conflict, RepoError};
use super::events::NewEvent;
use super::page::{Page, Paging};
use super::rules;
use crate::model::views::{to_json, TenantView};
use crate::model::{Mode, Ppm, Tenant};

/// A tenant to create, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTenant {
    /// Its id.
    pub id: String,
    /// Its parent.
    pub parent_id: Option<String>,
    /// Its own tier.
    pub tier: Option<String>,
    /// How its limits act.
    pub mode: Mode,
    /// How far its children's quotas may sum past its own.
    pub overcommit: Ppm,
    /// Its labels (a JSON object).
    pub labels: serde_json::Value,
}

/// A change to a tenant; `None` keeps a field, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantPatch {
    /// A new parent, or none (a root).
    pub parent_id: Option<Option<String>>,
    /// A new own tier, or none.
    pub tier: Option<Option<String>>,
    /// A new mode.
    pub mode: Option<Mode>,
    /// A new overcommit ratio.
    pub overcommit: Option<Ppm>,
    /// New labels (replacing the old ones).
    pub labels: Option<serde_json::Value>,
}

/// Which tenants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFilter {
    /// Only children of this tenant.
    pub parent: Option<String>,
    /// Only tenants whose own tier is this.
    pub tier: Option<String>,
    /// Only tenants in this mode.
    pub mode: Option<Mode>,
    /// Only tenants with this label (key, value as text).
    pub label: Option<(String, String)>,
    /// Only tenants whose id starts with this (compared byte by byte).
    pub prefix: Option<String>,
    /// Only tenants without a parent (`true`) or with one (`false`).
    pub root: Option<bool>,
}

const TENANT_COLUMNS: &str =
    "id, parent_id, tier, mode, overcommit_ppm, labels, created_at, updated_at";

fn tenant_from_row(row: &PgRow) -> Result<Tenant, RepoError> {
    let id: String = row.try_get("id")?;
    let Json(labels) = row.try_get::<Json<serde_json::Value>, _>("labels")?;
    let mode = row
        .try_get::<String, _>("mode")?
        .parse()
        .map_err(|e: String| RepoError::Corrupt(format!("tenant {id}: {e}")))?;
    let overcommit = u64::try_from(row.try_get::<i64, _>("overcommit_ppm")?)
        .map_err(|_| RepoError::Corrupt(format!("tenant {id}: overcommit")))?;
    Ok(Tenant {
        parent_id: row.try_get("parent_id")?,
        tier: row.try_get("tier")?,
        mode,
        overcommit: Ppm(overcommit),
        labels,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

pub(super) async fn get_in(conn: &mut PgConnection, id: &str) -> Result<Option<Tenant>, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(tenant_from_row).transpose()
}

/// Refuses references to a parent or tier that does not exist, naming the field.
async fn references_exist(
    conn: &mut PgConnection,
    parent_id: Option<&str>,
    tier: Option<&str>,
) -> Result<(), RepoError> {
    if let Some(parent) = parent_id {
        if get_in(&mut *conn, parent).await?.is_none() {
            return Err(RepoError::invalid(
                "parent_id",
                format!("tenant {parent} does not exist"),
            ));
        }
    }
    if let Some(tier) = tier {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tiers WHERE name = $1")
            .bind(tier)
            .fetch_optional(conn)
            .await?;
        if found.is_none() {
            return Err(RepoError::invalid(
                "tier",
                format!("tier {tier} does not exist"),
            ));
        }
    }
    Ok(())
}

impl QuotaRepo {
    /// Creates a tenant under its parent, keeping the hierarchy rules.
    pub async fn create_tenant(
        &self,
        actor: &str,
        new: &NewTenant,
        now: DateTime<Utc>,
    ) -> Result<Tenant, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        references_exist(&mut tx.tx, new.parent_id.as_deref(), new.tier.as_deref()).await?;
        if let Some(parent) = &new.parent_id {
            rules::check_depth(&mut tx.tx, &new.id, parent).await?;
        }
        let overcommit = i64::try_from(new.overcommit.0)
            .map_err(|_| RepoError::invalid("overcommit", "too large"))?;
        let row = sqlx::query(&format!(
            "INSERT INTO tenants (id, parent_id, tier, mode, overcommit_ppm, labels) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TENANT_COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.parent_id)
        .bind(&new.tier)
        .bind(new.mode.as_str())
        .bind(overcommit)
        .bind(Json(&new.labels))
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| unique_as_conflict(e, &format!("tenant {}", new.id)))?;
        let tenant = tenant_from_row(&row)?;
        if let Some(parent) = &tenant.parent_id {
            rules::check_overcommit(&mut tx.tx, std::slice::from_ref(parent), now).await?;
        }
        let after = to_json(&TenantView::from(&tenant));
        tx.commit(NewEvent::change(
            "tenant.created",
            format!("tenant/{}", tenant.id),
            Some(tenant.id.clone()),
            None,
            Some(after),
        ))
        .await?;
        Ok(tenant)
    }

    /// Tenant `id`.
    pub async fn get_tenant(&self, id: &str) -> Result<Tenant, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tenant {id}")))
    }

    /// Tenants matching `filter`, by id (byte order).
    pub async fn list_tenants(
        &self,
        filter: &TenantFilter,
        paging: &Paging,
    ) -> Result<Page<Tenant>, RepoError> {
        let mut query = QueryBuilder::new("");
        push_listing(&mut query, filter, paging);
        let rows = query.build().fetch_all(&self.pool).await?;
        let tenants = rows
            .iter()
            .map(tenant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(tenants, paging.limit, |t| t.id.clone()))
    }

    /// Changes a tenant, keeping the hierarchy rules.
    pub async fn update_tenant(
        &self,
        actor: &str,
        id: &str,
        patch: &TenantPatch,
        now: DateTime<Utc>,
    ) -> Result<Tenant, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tenant {id}")))?;
        let parent_id = patch.parent_id.clone().unwrap_or(before.parent_id.clone());
        let tier = patch.tier.clone().unwrap_or(before.tier.clone());
        references_exist(&mut tx.tx, parent_id.as_deref(), tier.as_deref()).await?;
        if parent_id != before.parent_id {
            if let Some(parent) = &parent_id {
                rules::check_depth(&mut tx.tx, id, parent).await?;
            }
        }
        let overcommit = i64::try_from(patch.overcommit.unwrap_or(before.overcommit).0)
            .map_err(|_| RepoError::invalid("overcommit", "too large"))?;
        let row = sqlx::query(&format!(
            "UPDATE tenants SET parent_id = $2, tier = $3, mode = $4, overcommit_ppm = $5, \
             labels = $6, updated_at = now() WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        ))
        .bind(id)
        .bind(&parent_id)
        .bind(&tier)
        .bind(patch.mode.unwrap_or(before.mode).as_str())
        .bind(overcommit)
        .bind(Json(patch.labels.as_ref().unwrap_or(&before.labels)))
        .fetch_one(&mut *tx.tx)
        .await?;
        let after = tenant_from_row(&row)?;
        let parents = rules::parents_affected_by_tenant(&mut tx.tx, id).await?;
        rules::check_overcommit(&mut tx.tx, &parents, now).await?;
        tx.commit(NewEvent::change(
            "tenant.updated",
            format!("tenant/{id}"),
            Some(id.to_string()),
            Some(to_json(&TenantView::from(&before))),
            Some(to_json(&TenantView::from(&after))),
        ))
        .await?;
        Ok(after)
    }

    /// Deletes a tenant with its assignments and overrides; refused while it has
    /// children. Its usage history and events stay (they are what was billed).
    pub async fn delete_tenant(&self, actor: &str, id: &str) -> Result<Tenant, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("tenant {id}")))?;
        let children: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE parent_id = $1")
            .bind(id)
            .fetch_one(&mut *tx.tx)
            .await?;
        if children > 0 {
            return Err(RepoError::Conflict(format!(
                "tenant {id} has {children} child tenant(s); delete or move them first"
            )));
        }
        sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit(NewEvent::change(
            "tenant.deleted",
            format!("tenant/{id}"),
            Some(id.to_string()),
            Some(to_json(&TenantView::from(&before))),
            None,
        ))
        .await?;
        Ok(before)
    }
}

/// The smallest string past every string that starts with `prefix`, in byte order: its
/// last character that has a successor, raised by one, and nothing after it. `None`
/// when no string is past them all (a prefix of U+10FFFF only).
fn past_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Appends the tenant listing of `filter` and `paging` to `query`: the first
/// `limit + 1` tenants past the cursor, in byte order of their ids.
///
/// Only the conditions a filter asks for are in the text, each one an index can take
/// (`0005_tenant_search.sql`): a prefix is a range of ids (`>=` it and `<` the first
/// string past it), not a `LIKE` a plan cached for another prefix could not use, and
/// the cursor is a range in the same order. So a page costs about its own rows at any
/// number of tenants. Public so that a test can `EXPLAIN` it.
pub fn push_listing<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    filter: &'a TenantFilter,
    paging: &'a Paging,
) {
    query.push(format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE TRUE"));
    if let Some(parent) = &filter.parent {
        query.push(" AND parent_id = ").push_bind(parent);
    }
    match filter.root {
        Some(true) => query.push(" AND parent_id IS NULL"),
        Some(false) => query.push(" AND parent_id IS NOT NULL"),
        None => query,
    };
    if let Some(tier) = &filter.tier {
        query.push(" AND tier = ").push_bind(tier);
    }
    if let Some(mode) = filter.mode {
        query.push(" AND mode = ").push_bind(mode.as_str());
    }
    if let Some((key, value)) = &filter.label {
        query.push(" AND labels ->> ").push_bind(key);
        query.push(" = ").push_bind(value);
    }
    if let Some(prefix) = &filter.prefix {
        query
            .push(" AND id COLLATE \"C\" >= ")
            .push_bind(prefix.as_str());
        if let Some(end) = past_prefix(prefix) {
            query.push(" AND id COLLATE \"C\" < ").push_bind(end);
        }
    }
    if let Some(after) = &paging.after {
        query
            .push(" AND id COLLATE \"C\" > ")
            .push_bind(after.as_str());
    }
    query
        .push(" ORDER BY id COLLATE \"C\" LIMIT ")
        .push_bind(paging.limit as i64 + 1);
}

#[cfg(test)]
mod tests {
    use super::past_prefix;

    #[test]
    fn past_prefix_is_the_first_string_after_every_string_with_the_prefix() {
        assert_eq!(past_prefix("acme/").as_deref(), Some("acme0"));
        assert_eq!(past_prefix("a").as_deref(), Some("b"));
        assert_eq!(past_prefix("az").as_deref(), Some("a{"));
        assert_eq!(past_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(past_prefix("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(past_prefix("\u{10FFFF}"), None);
        for id in ["acme/", "acme/web", "acme/\u{10FFFF}"] {
            assert!(id >= "acme/" && id < past_prefix("acme/").unwrap().as_str());
        }
        assert!("acme0" >= past_prefix("acme/").unwrap().as_str());
    }
}
