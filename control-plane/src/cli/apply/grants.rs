//! Grants in `tollgate apply`: declared under their tenant, each with a `key` — its
//! stable identity, unique per tenant — so that a second apply finds it and prints
//! `no changes`.
//!
//! A grant is a billing record and cannot change once made. A declared grant whose key
//! the server does not know is created; one it knows is left alone when the server's
//! says the same, and refused (before anything is applied) when it says otherwise: revoke
//! it and declare the new one under another key. What the file leaves out — the start
//! (`effective_at`, default: when it was applied), and with it the end of
//! `until: window_end` — was fixed when the grant was made and is not compared. With
//! `--prune`, a keyed grant of a tenant in the file that the file no longer declares is
//! revoked if it has not ended; grants without a key (from the CLI or the API) are never
//! touched.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::change::{instant, Request};
use super::file::DesiredTenant;
use crate::cli::client::{segment, Client};
use crate::cli::error::CliError;
use crate::cli::limit::period_and_window;
use crate::model::names::is_valid_resource;
use crate::model::window::{Period, WindowKind};
use crate::store::COUNTER_MAX;

/// A grant as the file writes it, under its tenant's `grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    key: String,
    resource: String,
    period: String,
    #[serde(default = "calendar")]
    window: String,
    amount: u64,
    effective_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    until: Option<String>,
    reason: String,
}

fn calendar() -> String {
    "calendar".into()
}

/// When a declared grant ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEnd {
    /// At this instant.
    At(DateTime<Utc>),
    /// At the end of its limit's calendar window in force at its start.
    WindowEnd,
}

/// A grant as the file declares it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// Its tenant.
    pub tenant: String,
    /// Its stable identity among the tenant's grants.
    pub key: String,
    /// The resource of the limit it raises.
    pub resource: String,
    /// That limit's period (`None`: a gauge).
    pub period: Option<Period>,
    /// That limit's window.
    pub window: WindowKind,
    /// What it adds.
    pub amount: u64,
    /// From when it counts (`None`: from when it is applied).
    pub effective_at: Option<DateTime<Utc>>,
    /// When it ends.
    pub end: GrantEnd,
    /// Why.
    pub reason: String,
}

impl GrantSpec {
    /// `requests/month/calendar`.
    fn limit_text(&self) -> String {
        let period = self.period.map_or("none", Period::as_str);
        format!("{}/{period}/{}", self.resource, self.window)
    }

    /// When it ends, if the file fixes it: its instant, or the end of the window at an
    /// explicit start.
    fn expiry(&self) -> Option<DateTime<Utc>> {
        match self.end {
            GrantEnd::At(at) => Some(at),
            GrantEnd::WindowEnd => {
                let window = self.period?.window_at(self.effective_at?)?;
                Some(window.end)
            }
        }
    }
}

/// A grant of a tenant on the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CurrentGrant {
    /// Its id, which its revocation names.
    pub id: i64,
    /// Its tenant.
    pub tenant: String,
    /// Its key, if it has one.
    pub key: Option<String>,
    /// The resource of the limit it raises.
    pub resource: String,
    /// That limit's period (`none`: a gauge).
    pub period: String,
    /// That limit's window.
    pub window: String,
    /// What it adds.
    pub amount: u64,
    /// From when it counts.
    pub effective_at: DateTime<Utc>,
    /// Until when.
    pub expires_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// `scheduled`, `in_force`, `expired` or `revoked`.
    pub state: String,
}

/// What `apply` does to grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    /// Grant it.
    Create(GrantSpec),
    /// End it now (`--prune`: the file no longer declares it).
    Revoke {
        /// Its id.
        id: i64,
        /// Its tenant.
        tenant: String,
        /// Its key.
        key: String,
    },
}

impl GrantChange {
    /// The request that makes it.
    pub fn request(&self) -> Result<Request, CliError> {
        Ok(match self {
            GrantChange::Create(grant) => {
                let mut body = Map::new();
                body.insert("key".into(), json!(grant.key));
                body.insert("resource".into(), json!(grant.resource));
                body.insert(
                    "period".into(),
                    json!(grant.period.map_or("none", Period::as_str)),
                );
                body.insert("window".into(), json!(grant.window.to_string()));
                body.insert("amount".into(), json!(grant.amount));
                if let Some(at) = grant.effective_at {
                    body.insert("effective_at".into(), json!(at));
                }
                match grant.end {
                    GrantEnd::At(at) => body.insert("expires_at".into(), json!(at)),
                    GrantEnd::WindowEnd => body.insert("until".into(), json!("window_end")),
                };
                body.insert("reason".into(), json!(grant.reason));
                Request {
                    method: Method::POST,
                    path: format!("/tenants/{}/grants", segment(&grant.tenant)?),
                    body: Some(Value::Object(body)),
                }
            }
            GrantChange::Revoke { id, tenant, key } => Request {
                method: Method::POST,
                path: format!("/tenants/{}/grants/{id}/revoke", segment(tenant)?),
                body: Some(json!({"reason": format!("{key}: no longer in the applied file")})),
            },
        })
    }
}

impl fmt::Display for GrantChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantChange::Create(grant) => {
                write!(
                    f,
                    "+ grant {} {}: {} +{}",
                    grant.tenant,
                    grant.key,
                    grant.limit_text(),
                    grant.amount
                )?;
                if let Some(at) = grant.effective_at {
                    write!(f, " from {}", instant(Some(at)))?;
                }
                match grant.end {
                    GrantEnd::At(at) => write!(f, " until {}", instant(Some(at)))?,
                    GrantEnd::WindowEnd => f.write_str(" until the window's end")?,
                }
                write!(f, " ({:?})", grant.reason)
            }
            GrantChange::Revoke { tenant, key, .. } => {
                write!(f, "- grant {tenant} {key} (revoked now)")
            }
        }
    }
}

fn is_valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The grants `entries` of tenant `tenant` (at `path`, `tenants[0]`) declare, checked;
/// every problem is added to `errors` with its path.
pub fn check(
    entries: Vec<GrantEntry>,
    tenant: &str,
    path: &str,
    errors: &mut Vec<String>,
) -> Vec<GrantSpec> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut specs = Vec::new();
    for (k, entry) in entries.into_iter().enumerate() {
        let at = format!("{path}.grants[{k}]");
        let mut fail =
            |field: &str, message: String| errors.push(format!("{at}.{field}: {message}"));
        if !is_valid_key(&entry.key) {
            fail("key", format!("{:?}: 1-128 of A-Za-z0-9._:-", entry.key));
        }
        if let Some(first) = seen.insert(entry.key.clone(), k) {
            fail(
                "key",
                format!("{} is already declared at grants[{first}]", entry.key),
            );
        }
        if !is_valid_resource(&entry.resource) {
            fail("resource", "1-64 characters of a-z, 0-9, _, . and -".into());
        }
        let span = entry
            .window
            .parse::<WindowKind>()
            .map_err(|e| ("window", e.to_string()))
            .and_then(|kind| {
                period_and_window(&entry.period, kind).map_err(|e| (e.part, e.message))
            });
        let (period, window) = span.unwrap_or_else(|(part, message)| {
            fail(part, message);
            (None, WindowKind::Calendar)
        });
        if entry.amount == 0 || entry.amount > COUNTER_MAX {
            fail("amount", format!("from 1 to {COUNTER_MAX}"));
        }
        if entry.reason.trim().is_empty() || entry.reason.chars().count() > 1024 {
            fail("reason", "say why, in 1-1024 characters".into());
        }
        let end = match (entry.expires_at, entry.until.as_deref()) {
            (Some(at), None) => GrantEnd::At(at),
            (None, Some("window_end")) => GrantEnd::WindowEnd,
            (None, Some(other)) => {
                fail("until", format!("{other:?}: expected window_end"));
                GrantEnd::WindowEnd
            }
            _ => {
                fail(
                    "expires_at",
                    "give exactly one of expires_at and until: window_end".into(),
                );
                GrantEnd::WindowEnd
            }
        };
        specs.push(GrantSpec {
            tenant: tenant.to_string(),
            key: entry.key,
            resource: entry.resource,
            period,
            window,
            amount: entry.amount,
            effective_at: entry.effective_at,
            end,
            reason: entry.reason,
        });
    }
    specs
}

/// PostgreSQL keeps microseconds: compare at that precision.
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_micros() == b.timestamp_micros()
}

/// How the server's `current` differs from the declared `grant`, in what the file fixes.
fn differences(grant: &GrantSpec, current: &CurrentGrant) -> Vec<String> {
    let mut differences = Vec::new();
    let limit = format!("{}/{}/{}", current.resource, current.period, current.window);
    if limit != grant.limit_text() {
        differences.push(format!("limit {limit} -> {}", grant.limit_text()));
    }
    if current.amount != grant.amount {
        differences.push(format!("amount {} -> {}", current.amount, grant.amount));
    }
    if let Some(at) = grant.effective_at {
        if !same_instant(current.effective_at, at) {
            differences.push(format!(
                "effective_at {} -> {}",
                instant(Some(current.effective_at)),
                instant(Some(at))
            ));
        }
    }
    if let Some(at) = grant.expiry() {
        if !same_instant(current.expires_at, at) {
            differences.push(format!(
                "expires_at {} -> {}",
                instant(Some(current.expires_at)),
                instant(Some(at))
            ));
        }
    }
    if current.reason != grant.reason {
        differences.push(format!("reason {:?} -> {:?}", current.reason, grant.reason));
    }
    differences
}

/// The grants to create and, with `prune`, to revoke, for the file's `tenants` against
/// the server's `current` grants; or the declared grants that differ from the server's.
pub fn changes(
    tenants: &[&DesiredTenant],
    current: &[CurrentGrant],
    prune: bool,
) -> Result<(Vec<GrantChange>, Vec<GrantChange>), Vec<String>> {
    let on_server: HashMap<(&str, &str), &CurrentGrant> = current
        .iter()
        .filter_map(|g| Some(((g.tenant.as_str(), g.key.as_deref()?), g)))
        .collect();
    let mut creations = Vec::new();
    let mut errors = Vec::new();
    for tenant in tenants {
        for grant in &tenant.grants {
            match on_server.get(&(grant.tenant.as_str(), grant.key.as_str())) {
                None => creations.push(GrantChange::Create(grant.clone())),
                Some(existing) => {
                    let differences = differences(grant, existing);
                    if !differences.is_empty() {
                        errors.push(format!(
                            "grant {} of tenant {} differs from the server's grant {} ({}): \
                             a grant cannot change; revoke it (tollgate grant revoke {} {}) \
                             and declare the new one under another key",
                            grant.key,
                            grant.tenant,
                            existing.id,
                            differences.join(", "),
                            grant.tenant,
                            existing.id
                        ));
                    }
                }
            }
        }
    }
    let mut revocations = Vec::new();
    if prune {
        for tenant in tenants {
            let declared: Vec<&str> = tenant.grants.iter().map(|g| g.key.as_str()).collect();
            revocations.extend(
                current
                    .iter()
                    .filter(|g| g.tenant == tenant.spec.id)
                    .filter(|g| matches!(g.state.as_str(), "in_force" | "scheduled"))
                    .filter_map(|g| {
                        let key = g.key.as_deref()?;
                        (!declared.contains(&key)).then(|| GrantChange::Revoke {
                            id: g.id,
                            tenant: g.tenant.clone(),
                            key: key.to_string(),
                        })
                    }),
            );
        }
    }
    if errors.is_empty() {
        Ok((creations, revocations))
    } else {
        Err(errors)
    }
}

/// The grants on the server of `tenants` (each of which the server has).
pub async fn fetch(client: &Client, tenants: &[&str]) -> Result<Vec<CurrentGrant>, CliError> {
    let mut grants = Vec::new();
    for tenant in tenants {
        let listing = client
            .list(&format!("/tenants/{}/grants", segment(tenant)?), &[], None)
            .await?;
        for item in &listing.items {
            grants.push(CurrentGrant::deserialize(item).map_err(|e| {
                CliError::Transport(format!(
                    "the server answered a grant the CLI cannot read: {e}"
                ))
            })?);
        }
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::super::change::{summary, Change};
    use super::super::file::parse;
    use super::*;

    const FILE: &str = "\
tenants:
  - id: acme
    grants:
      - {key: launch, resource: requests, period: month, amount: 500,
         effective_at: 2030-03-01T00:00:00Z, until: window_end, reason: launch month}
      - {key: credit, resource: request_bytes, period: day, amount: 7,
         expires_at: 2030-03-02T00:00:00Z, reason: outage}
      - {key: later, resource: requests, period: month, amount: 1,
         until: window_end, reason: whenever applied}
";

    fn server(key: Option<&str>, amount: u64, state: &str) -> CurrentGrant {
        CurrentGrant {
            id: 40,
            tenant: "acme".into(),
            key: key.map(str::to_string),
            resource: "requests".into(),
            period: "month".into(),
            window: "calendar".into(),
            amount,
            effective_at: "2030-03-01T00:00:00Z".parse().unwrap(),
            expires_at: "2030-04-01T00:00:00Z".parse().unwrap(),
            reason: "launch month".into(),
            state: state.into(),
        }
    }

    fn plan(current: &[CurrentGrant], prune: bool) -> Result<Vec<String>, Vec<String>> {
        let desired = parse(FILE).unwrap();
        let tenants: Vec<&DesiredTenant> = desired.tenants.iter().collect();
        let (created, revoked) = changes(&tenants, current, prune)?;
        Ok(created
            .iter()
            .chain(&revoked)
            .map(ToString::to_string)
            .collect())
    }

    #[test]
    fn declared_grants_the_server_lacks_are_created_with_their_requests() {
        let lines = plan(&[], false).unwrap();
        assert_eq!(
            lines,
            [
                "+ grant acme launch: requests/month/calendar +500 from 2030-03-01T00:00:00Z \
                 until the window's end (\"launch month\")",
                "+ grant acme credit: request_bytes/day/calendar +7 until 2030-03-02T00:00:00Z \
                 (\"outage\")",
                "+ grant acme later: requests/month/calendar +1 until the window's end \
                 (\"whenever applied\")",
            ]
        );
        let desired = parse(FILE).unwrap();
        let request = GrantChange::Create(desired.tenants[0].grants[0].clone())
            .request()
            .unwrap();
        assert_eq!(
            (request.method, request.path.as_str()),
            (Method::POST, "/tenants/acme/grants")
        );
        assert_eq!(
            request.body.unwrap(),
            json!({"key": "launch", "resource": "requests", "period": "month",
                   "window": "calendar", "amount": 500,
                   "effective_at": "2030-03-01T00:00:00Z", "until": "window_end",
                   "reason": "launch month"})
        );
    }

    #[test]
    fn a_grant_the_server_has_under_its_key_is_no_change_and_a_changed_one_is_refused() {
        let mut later = server(Some("later"), 1, "in_force");
        later.reason = "whenever applied".into();
        // Applied on another day: its start and end are the server's to keep.
        later.effective_at = "2031-07-09T10:00:00Z".parse().unwrap();
        later.expires_at = "2031-08-01T00:00:00Z".parse().unwrap();
        let mut credit = server(Some("credit"), 7, "expired");
        credit.resource = "request_bytes".into();
        credit.period = "day".into();
        credit.reason = "outage".into();
        credit.expires_at = "2030-03-02T00:00:00Z".parse().unwrap();
        let same = [server(Some("launch"), 500, "scheduled"), credit, later];
        assert_eq!(plan(&same, true).unwrap(), Vec::<String>::new());

        let errors = plan(&[server(Some("launch"), 600, "in_force")], false).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "grant launch of tenant acme differs from the server's grant 40 \
                 (amount 600 -> 500): a grant cannot change"
            ),
            "{errors:?}"
        );
        let mut ended_earlier = server(Some("launch"), 500, "in_force");
        ended_earlier.expires_at = "2030-03-15T00:00:00Z".parse().unwrap();
        let errors = plan(&[ended_earlier], false).unwrap_err();
        assert!(errors[0].contains("expires_at 2030-03-15T00:00:00Z -> 2030-04-01T00:00:00Z"));
    }

    #[test]
    fn prune_revokes_keyed_grants_no_longer_declared_that_have_not_ended() {
        let current = [
            server(Some("old"), 5, "in_force"),
            server(Some("older"), 5, "expired"),
            server(None, 5, "in_force"),
        ];
        let lines = plan(&current, true).unwrap();
        assert_eq!(lines.last().unwrap(), "- grant acme old (revoked now)");
        assert_eq!(lines.len(), 4, "three created, one revoked: {lines:?}");
        assert_eq!(plan(&current, false).unwrap().len(), 3, "only with --prune");
        let revoke = Change::Grant(GrantChange::Revoke {
            id: 40,
            tenant: "acme/web".into(),
            key: "old".into(),
        });
        let request = revoke.request().unwrap();
        assert_eq!(request.path, "/tenants/acme%2Fweb/grants/40/revoke");
        assert_eq!(summary(&[revoke]), "0 to create, 0 to change, 1 to delete");
    }

    #[test]
    fn bad_grants_are_reported_with_their_paths() {
        let errors = parse(
            "tenants:\n  - id: a\n    grants:\n\
             \x20     - {key: x, resource: r, period: month, amount: 0, reason: ''}\n\
             \x20     - {key: x, resource: r, period: fortnight, amount: 1, reason: y,\n\
             \x20        expires_at: 2030-01-01T00:00:00Z, until: window_end}\n",
        )
        .unwrap_err();
        let expected = [
            "tenants[0].grants[0].amount:",
            "tenants[0].grants[0].reason:",
            "tenants[0].grants[0].expires_at: give exactly one",
            "tenants[0].grants[1].key: x is already declared at grants[0]",
            "tenants[0].grants[1].period:",
            "tenants[0].grants[1].expires_at: give exactly one",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(expected) {
            assert!(
                error.starts_with(start),
                "{error} should start with {start}"
            );
        }
    }
}
