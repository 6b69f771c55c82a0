//! Where and how the filter calls the control plane, and what it does without an
//! answer.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{fail, ConfigError};

/// The longest wait for a decision we accept; longer means requests pile up.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// What the filter does when it cannot get a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Let the request through with `X-Quota-Status: unknown`.
    #[default]
    Open,
    /// Answer 503.
    Closed,
}

/// Where and how the filter calls the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// The Envoy cluster that reaches the control plane.
    pub cluster: String,
    /// `:authority` of the callouts.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// How long a request may wait for a decision before `failure_mode` applies. The
    /// filter enforces it itself; Envoy's own callout timeout is set later, as a backstop.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The secret the control plane's decision API asks of gateways (`tollgate serve
    /// --decision-token`), sent on every callout as `authorization: Bearer`. Envoy's
    /// config dump shows it: keep Envoy's admin interface private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<ConfigSecret>,
    /// `Bearer <token>`, built once from `token` when the config is read.
    #[serde(skip)]
    pub authorization: Option<ConfigSecret>,
}

/// A secret of the filter config: read from JSON as a string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigSecret(String);

impl ConfigSecret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ControlPlaneConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.is_empty() {
            return fail("control_plane.cluster", "must not be empty");
        }
        if self.authority.is_empty() {
            return fail("control_plane.authority", "must not be empty");
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return fail("control_plane.timeout_ms", "must be 1..=60000");
        }
        if self.token.as_ref().is_some_and(|t| {
            !(1..=4096).contains(&t.0.len()) || !t.0.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return fail(
                "control_plane.token",
                "must be 1 to 4096 printable ASCII characters, without spaces",
            );
        }
        Ok(())
    }

    /// Builds the `authorization` header value from `token`, once, as the config is read.
    pub(super) fn authorize(&mut self) {
        self.authorization = (self.token.as_ref()).map(|t| ConfigSecret(format!("Bearer {}", t.0)));
    }
}

fn default_authority() -> String {
    "tollgate-control-plane".into()
}

fn default_timeout_ms() -> u64 {
    200
}
