//! Queries over `assignments`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::catalog::{assignment_from_row, ASSIGNMENT_COLUMNS};
use super::connection::QuotaRepo;
use super::error::RepoError;
use super::events::NewEvent;
use super::page::{Page, Paging};
use super::rules;
use crate::model::views::{to_json, AssignmentView};
use crate::model::{Assignment, Subject};

/// An assignment to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    /// The tier it gives.
    pub tier: String,
    /// To whom.
    pub subject: Subject,
    /// Whether it applies.
    pub enabled: bool,
    /// Until when it applies.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A change to an assignment; `None` keeps a field, `Some(None)` clears the expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentPatch {
    /// Another tier.
    pub tier: Option<String>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// A new expiry, or none.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// Which assignments to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentFilter {
    /// Only those giving this tier.
    pub tier: Option<String>,
    /// Only direct assignments to this tenant.
    pub tenant: Option<String>,
    /// Only assignments to this role.
    pub role: Option<String>,
    /// Only this kind (`tenant`, `role`, `default`).
    pub kind: Option<String>,
    /// Only those that apply (`Some(true)`) or do not (`Some(false)`) at this instant.
    pub active_at: Option<(bool, DateTime<Utc>)>,
}

async fn get_in(conn: &mut PgConnection, id: i64) -> Result<Assignment, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| RepoError::NotFound(format!("assignment {id}")))?;
    assignment_from_row(&row)
}

async fn tier_exists(conn: &mut PgConnection, tier: &str) -> Result<(), RepoError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tiers WHERE name = $1")
        .bind(tier)
        .fetch_optional(conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(RepoError::invalid(
            "tier",
            format!("tier {tier} does not exist"),
        )),
    }
}

/// The overcommit a change of `assignment` can break: its tenant's, for direct ones.
async fn check_rules(
    conn: &mut PgConnection,
    assignment: &Assignment,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    if let Subject::Tenant(tenant) = &assignment.subject {
        let parents = rules::parents_affected_by_tenant(&mut *conn, tenant).await?;
        rules::check_overcommit(conn, &parents, now).await?;
    }
    Ok(())
}

fn tenant_of(a: &Assignment) -> Option<String> {
    match &a.subject {
        Subject::Tenant(t) => Some(t.clone()),
        _ => None,
    }
}

impl QuotaRepo {
    /// Creates an assignment.
    pub async fn create_assignment(
        &self,
        actor: &str,
        new: &NewAssignment,
        now: DateTime<Utc>,
    ) -> Result<Assignment, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        tier_exists(&mut tx.tx, &new.tier).await?;
        let (tenant, role) = match &new.subject {
            Subject::Tenant(t) => (Some(t.as_str()), None),
            Subject::Role(r) => (None, Some(r.as_str())),
            Subject::Default => (None, None),
        };
        if let Some(tenant) = tenant {
            let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(&mut *tx.tx)
                .await?;
            if found.is_none() {
                return Err(RepoError::invalid(
                    "tenant",
                    format!("tenant {tenant} does not exist"),
                ));
            }
        }
        let row = sqlx::query(&format!(
            "INSERT INTO assignments (tier, kind, tenant_id, role, enabled, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ASSIGNMENT_COLUMNS}"
        ))
        .bind(&new.tier)
        .bind(new.subject.kind())
        .bind(tenant)
        .bind(role)
        .bind(new.enabled)
        .bind(new.expires_at)
        .fetch_one(&mut *tx.tx)
        .await?;
        let created = assignment_from_row(&row)?;
        check_rules(&mut tx.tx, &created, now).await?;
        tx.commit(NewEvent::change(
            "assignment.created",
            format!("assignment/{}", created.id),
            tenant_of(&created),
            None,
            Some(to_json(&AssignmentView::from(&created))),
        ))
        .await?;
        Ok(created)
    }

    /// Assignment `id`.
    pub async fn get_assignment(&self, id: i64) -> Result<Assignment, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id).await
    }

    /// Assignments matching `filter`, in id order.
    pub async fn list_assignments(
        &self,
        filter: &AssignmentFilter,
        paging: &Paging,
    ) -> Result<Page<Assignment>, RepoError> {
        let after: i64 = match &paging.after {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| RepoError::invalid("cursor", "not a cursor of this listing"))?,
            None => 0,
        };
        let (active, at) = match filter.active_at {
            Some((active, at)) => (Some(active), Some(at)),
            None => (None, None),
        };
        let rows = sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments \
             WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR tenant_id = $2) \
               AND ($3::text IS NULL OR role = $3) AND ($4::text IS NULL OR kind = $4) \
               AND ($5::boolean IS NULL OR \
                    (enabled AND (expires_at IS NULL OR expires_at > $6)) = $5) \
               AND id > $7 \
             ORDER BY id LIMIT $8"
        ))
        .bind(&filter.tier)
        .bind(&filter.tenant)
        .bind(&filter.role)
        .bind(&filter.kind)
        .bind(active)
        .bind(at)
        .bind(after)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let assignments = rows
            .iter()
            .map(assignment_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(assignments, paging.limit, |a| {
            a.id.to_string()
        }))
    }

    /// Changes an assignment's tier, enabled flag or expiry.
    pub async fn update_assignment(
        &self,
        actor: &str,
        id: i64,
        patch: &AssignmentPatch,
        now: DateTime<Utc>,
    ) -> Result<Assignment, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        let tier = patch.tier.clone().unwrap_or(before.tier.clone());
        tier_exists(&mut tx.tx, &tier).await?;
        let row = sqlx::query(&format!(
            "UPDATE assignments SET tier = $2, enabled = $3, expires_at = $4, updated_at = now() \
             WHERE id = $1 RETURNING {ASSIGNMENT_COLUMNS}"
        ))
        .bind(id)
        .bind(&tier)
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(patch.expires_at.unwrap_or(before.expires_at))
        .fetch_one(&mut *tx.tx)
        .await?;
        let after = assignment_from_row(&row)?;
        check_rules(&mut tx.tx, &after, now).await?;
        tx.commit(NewEvent::change(
            "assignment.updated",
            format!("assignment/{id}"),
            tenant_of(&after),
            Some(to_json(&AssignmentView::from(&before))),
            Some(to_json(&AssignmentView::from(&after))),
        ))
        .await?;
        Ok(after)
    }

    /// Deletes an assignment.
    pub async fn delete_assignment(
        &self,
        actor: &str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Assignment, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        sqlx::query("DELETE FROM assignments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        check_rules(&mut tx.tx, &before, now).await?;
        tx.commit(NewEvent::change(
            "assignment.deleted",
            format!("assignment/{id}"),
            tenant_of(&before),
            Some(to_json(&AssignmentView::from(&before))),
            None,
        ))
        .await?;
        Ok(before)
    }
}
