//! The filter's configuration: JSON in the Envoy filter config
//! (`config.configuration`), parsed once in `on_configure`.
//!
//! Every field has a default except the control-plane cluster, so the smallest config
//! is `{"control_plane": {"cluster": "tollgate_control_plane"}}`. Unknown fields are
//! refused and every value is checked, and the error names the field: a typo must make
//! Envoy refuse the listener, not silently run it unprotected. `envoy/README.md`
//! documents every field with an example.
//!
//! # Layout
//! - `filter` — the whole configuration: parsing, and validation section by section.
//! - `control_plane` — where and how the control plane is called; the failure mode.
//! - `tenant` — where the tenant id and roles come from; what a tenant id may be.
//! - `matching` — which requests count.
//! - `costs` — what a request costs, up front and after its response.
//! - `priced` — a cost priced per model from several reported parts (AI back ends).
//! - `headers` — the quota headers.
//! - `budgets` — the fast path's budgets.
//! - `quota_path` — where the gateway answers the caller's own quota (the self-view).
//! - `error` — the refusal, naming the field, and the name rules fields share.

mod budgets;
mod control_plane;
mod costs;
mod error;
mod filter;
mod headers;
mod matching;
mod priced;
mod quota_path;
mod tenant;

#[cfg(test)]
mod tests;

pub use budgets::BudgetsConfig;
pub use control_plane::{ConfigSecret, ControlPlaneConfig, FailureMode};
pub use costs::{CostsConfig, ResponseHeaderCost, ResponseJsonCost};
pub use error::ConfigError;
pub use filter::FilterConfig;
pub use headers::HeadersConfig;
pub use matching::MatchConfig;
pub use priced::{
    ModelFrom, ModelSource, Pointers, PricedCost, PricedPart, ANY_MODEL, MODELS_MAX, MODEL_NAME_MAX,
};
pub use tenant::{is_valid_tenant_id, TenantConfig, TenantSource, TENANT_PLACEHOLDER};
