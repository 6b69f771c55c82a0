//! The quota model, pure (no I/O): tiers and their limits, tenants in a hierarchy,
//! assignments of tiers to tenants, roles and everyone; counter windows; which limits
//! apply to a request; and how the model is shown as JSON.
//!
//! May import: the protocol crate only. Everything else in the control plane builds on
//! it.
//!
//! # Layout
//! - [`limit`] — limits, their spans, and the tiers that bundle them.
//! - [`tenant`] — tenants, modes, assignments.
//! - [`grant`] — grants: amounts added to one tenant's hard limits for a while.
//! - [`chain`] — the cached shapes decisions start from: the catalog and a tenant's chain.
//! - [`window`] — calendar and rolling windows in UTC.
//! - [`resolve`] — which limits apply to a request (tier precedence, overrides).
//! - [`names`] — what may name a tenant, resource, role or id.
//! - [`views`] — the JSON shapes of the model, in the admin API and the audit log.
//! - [`webhook`] — webhook subscriptions: thresholds, filters, the signing secret.

pub mod chain;
pub mod grant;
pub mod limit;
pub mod names;
pub mod resolve;
pub mod tenant;
pub mod views;
pub mod webhook;
pub mod window;

pub use chain::{Catalog, Chain, ChainLevel, MAX_DEPTH};
pub use grant::{Grant, GrantState, Granted};
pub use limit::{LimitDef, LimitOwner, Span, StoredLimit, Tier};
pub use tenant::{Assignment, Mode, Ppm, Subject, Tenant};
