//! The refusal of a configuration, and the name rules several sections share.

use thiserror::Error;

/// A configuration the filter must refuse to start with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON of the expected shape.
    #[error("invalid filter configuration: {0}")]
    Json(String),
    /// A field with a value out of range.
    #[error("invalid filter configuration: {field}: {problem}")]
    Field {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// One entry of a table field (a price table's model, or its part) with a bad
    /// value: `field`, then `key` (`["gpt-4o"]["cached"]`).
    #[error("invalid filter configuration: {field}{key}: {problem}")]
    Entry {
        /// Dotted path of the table field.
        field: &'static str,
        /// Which entry, in brackets, its names quoted.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl ConfigError {
    /// The refusal of `field`'s entry `key` for `problem`.
    pub(super) fn entry(field: &'static str, key: String, problem: &'static str) -> ConfigError {
        ConfigError::Entry {
            field,
            key,
            problem,
        }
    }
}

/// The refusal of `field` for `problem`.
pub(super) fn fail(field: &'static str, problem: &'static str) -> Result<(), ConfigError> {
    Err(ConfigError::Field { field, problem })
}

/// A header name as Envoy hands it to the filter: lower case.
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Dot-separated claim names (`org.id`).
pub(super) fn is_claim_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|name| !name.is_empty())
}
