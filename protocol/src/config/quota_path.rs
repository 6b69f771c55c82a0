//! `quota_path`: the path at which the gateway answers, itself, with the caller's own
//! quota (the self-view); absent, the feature is off.

use super::error::{fail, ConfigError};

/// The longest `quota_path`.
const MAX_LEN: usize = 256;

/// Checks `quota_path`: a path as Envoy hands it to the filter after normalising it
/// (`normalize_path`, `merge_slashes`), so that requests can match it — it starts with
/// `/`, has no query or fragment, no empty, `.` or `..` segment, and is at most 256
/// visible ASCII characters.
pub(super) fn validate(quota_path: Option<&str>) -> Result<(), ConfigError> {
    let Some(path) = quota_path else {
        return Ok(());
    };
    if !path.starts_with('/') {
        return fail("quota_path", "must start with '/'");
    }
    if path.contains(['?', '#']) {
        return fail("quota_path", "must be a path without a query or fragment");
    }
    let visible = path.bytes().all(|b| b.is_ascii_graphic());
    if path.len() > MAX_LEN || !visible {
        return fail("quota_path", "must be at most 256 visible ASCII characters");
    }
    if path
        .split('/')
        .skip(1)
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return fail(
            "quota_path",
            "must have no empty, '.' or '..' segment (Envoy normalises them away)",
        );
    }
    Ok(())
}
