//! Queries over `webhook_subscriptions`: admin writes (each in the admin transaction,
//! with its event — whose before and after never hold the secret), listings, and the
//! enabled subscriptions' filters the decisions compare usage with.

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::model::views::to_json;
use crate::model::webhook::{Webhook, WebhookFilter, WebhookView};
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::events::NewEvent;
use crate::repo::page::{Page, Paging};

/// A change to a subscription; what is `None` stays.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// A new URL.
    pub url: Option<String>,
    /// A new signing secret (a rotation).
    pub secret: Option<SecretString>,
    /// New percentages (ascending, distinct).
    pub percents: Option<Vec<u16>>,
    /// Whether the hard limit is told.
    pub hard: Option<bool>,
    /// Another tenant, or none (`Some(None)`).
    pub tenant: Option<Option<String>>,
    /// Whether the tenant's subtree is watched too.
    pub subtree: Option<bool>,
    /// New resources (empty: every one).
    pub resources: Option<Vec<String>>,
    /// New tiers (empty: every one).
    pub tiers: Option<Vec<String>>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// A new description.
    pub description: Option<String>,
}

const COLUMNS: &str = "id, url, secret, percents, hard, tenant_id, subtree, resources, tiers, \
                       enabled, description, created_at, updated_at";

fn percents_of(row: &PgRow) -> Result<Vec<u16>, RepoError> {
    let stored: Vec<i32> = row.try_get("percents")?;
    stored
        .into_iter()
        .map(|p| u16::try_from(p).map_err(|_| RepoError::Corrupt(format!("percentage {p}"))))
        .collect()
}

fn webhook_from_row(row: &PgRow) -> Result<Webhook, RepoError> {
    let secret: String = row.try_get("secret")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret: SecretString::from(secret),
        filter: filter_from_row(row)?,
        enabled: row.try_get("enabled")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn filter_from_row(row: &PgRow) -> Result<WebhookFilter, RepoError> {
    Ok(WebhookFilter {
        percents: percents_of(row)?,
        hard: row.try_get("hard")?,
        tenant: row.try_get("tenant_id")?,
        subtree: row.try_get("subtree")?,
        resources: row.try_get("resources")?,
        tiers: row.try_get("tiers")?,
    })
}

fn percents_column(percents: &[u16]) -> Vec<i32> {
    percents.iter().map(|&p| i32::from(p)).collect()
}

async fn get_in(conn: &mut PgConnection, id: &str) -> Result<Webhook, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| RepoError::NotFound(format!("webhook {id}")))?;
    webhook_from_row(&row)
}

fn change(kind: &str, id: &str, before: Option<&Webhook>, after: Option<&Webhook>) -> NewEvent {
    let tenant = after.or(before).and_then(|w| w.filter.tenant.clone());
    NewEvent::change(
        kind,
        format!("webhook/{id}"),
        tenant,
        before.map(|w| to_json(&WebhookView::from(w))),
        after.map(|w| to_json(&WebhookView::from(w))),
    )
}

impl QuotaRepo {
    /// Creates a subscription; 409 when its id is taken.
    pub async fn create_webhook(&self, actor: &str, new: &Webhook) -> Result<Webhook, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let filter = &new.filter;
        let row = sqlx::query(&format!(
            "INSERT INTO webhook_subscriptions \
               (id, url, secret, percents, hard, tenant_id, subtree, resources, tiers, \
                enabled, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.url)
        .bind(new.secret.expose_secret())
        .bind(percents_column(&filter.percents))
        .bind(filter.hard)
        .bind(&filter.tenant)
        .bind(filter.subtree)
        .bind(&filter.resources)
        .bind(&filter.tiers)
        .bind(new.enabled)
        .bind(&new.description)
        .fetch_optional(&mut *tx.tx)
        .await?
        .ok_or_else(|| RepoError::Conflict(format!("webhook {} already exists", new.id)))?;
        let created = webhook_from_row(&row)?;
        tx.commit(change("webhook.created", &created.id, None, Some(&created)))
            .await?;
        Ok(created)
    }

    /// Subscription `id`.
    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id).await
    }

    /// Subscriptions in id order.
    pub async fn list_webhooks(&self, paging: &Paging) -> Result<Page<Webhook>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions \
             WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(&paging.after)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let webhooks = rows
            .iter()
            .map(webhook_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(webhooks, paging.limit, |w| w.id.clone()))
    }

    /// Changes a subscription.
    pub async fn update_webhook(
        &self,
        actor: &str,
        id: &str,
        patch: &WebhookPatch,
    ) -> Result<Webhook, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        let old = &before.filter;
        let secret = patch.secret.as_ref().unwrap_or(&before.secret);
        let row = sqlx::query(&format!(
            "UPDATE webhook_subscriptions SET url = $2, secret = $3, percents = $4, hard = $5, \
               tenant_id = $6, subtree = $7, resources = $8, tiers = $9, enabled = $10, \
               description = $11, updated_at = now() \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(patch.url.as_ref().unwrap_or(&before.url))
        .bind(secret.expose_secret())
        .bind(percents_column(
            patch.percents.as_ref().unwrap_or(&old.percents),
        ))
        .bind(patch.hard.unwrap_or(old.hard))
        .bind(patch.tenant.clone().unwrap_or_else(|| old.tenant.clone()))
        .bind(patch.subtree.unwrap_or(old.subtree))
        .bind(patch.resources.as_ref().unwrap_or(&old.resources))
        .bind(patch.tiers.as_ref().unwrap_or(&old.tiers))
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(patch.description.as_ref().unwrap_or(&before.description))
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|error| match &error {
            // The table's own rule: a subscription asks for at least one threshold.
            sqlx::Error::Database(db) if db.is_check_violation() => {
                RepoError::invalid("thresholds", "give at least one percentage, or hard: true")
            }
            _ => RepoError::from(error),
        })?;
        let after = webhook_from_row(&row)?;
        let mut event = change("webhook.updated", id, Some(&before), Some(&after));
        if patch.secret.is_some() {
            // Which change it was, never what the secret is.
            event.data = serde_json::json!({"secret": "rotated"});
        }
        tx.commit(event).await?;
        Ok(after)
    }

    /// Deletes a subscription, with its pending and finished deliveries.
    pub async fn delete_webhook(&self, actor: &str, id: &str) -> Result<Webhook, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit(change("webhook.deleted", id, Some(&before), None))
            .await?;
        Ok(before)
    }

    /// The filters of every enabled subscription, by id: what the decisions compare
    /// usage with (no secrets).
    pub async fn enabled_webhook_filters(&self) -> Result<Vec<(String, WebhookFilter)>, RepoError> {
        let rows = sqlx::query(
            "SELECT id, percents, hard, tenant_id, subtree, resources, tiers \
             FROM webhook_subscriptions WHERE enabled ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, filter_from_row(row)?)))
            .collect()
    }
}
