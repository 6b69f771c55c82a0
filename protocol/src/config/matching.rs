//! Which requests are checked and counted; the others pass untouched.

use serde::{Deserialize, Serialize};

use super::error::{fail, ConfigError};

/// Which requests are checked and counted; the others pass untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Methods that count (upper case); empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Methods that never count.
    #[serde(default)]
    pub exclude_methods: Vec<String>,
    /// Path prefixes that count.
    #[serde(default = "default_include_paths")]
    pub include_paths: Vec<String>,
    /// Path prefixes that never count, even inside an included prefix.
    #[serde(default = "default_exclude_paths")]
    pub exclude_paths: Vec<String>,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            methods: Vec::new(),
            exclude_methods: Vec::new(),
            include_paths: default_include_paths(),
            exclude_paths: default_exclude_paths(),
        }
    }
}

impl MatchConfig {
    /// Whether a request with this method and path is checked and counted. The query
    /// string is not part of the match.
    pub fn counts(&self, method: &str, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or_default();
        let prefixed = |prefixes: &[String]| prefixes.iter().any(|p| path.starts_with(p.as_str()));
        (self.methods.is_empty() || self.methods.iter().any(|x| x == method))
            && !self.exclude_methods.iter().any(|x| x == method)
            && prefixed(&self.include_paths)
            && !prefixed(&self.exclude_paths)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .methods
            .iter()
            .chain(&self.exclude_methods)
            .any(|m| !is_method(m))
        {
            return fail("match.methods", "must be upper-case method names");
        }
        if self.include_paths.is_empty() {
            return fail("match.include_paths", "must name at least one prefix");
        }
        if self.include_paths.iter().any(|p| !p.starts_with('/')) {
            return fail("match.include_paths", "every entry must start with '/'");
        }
        if self.exclude_paths.iter().any(|p| !p.starts_with('/')) {
            return fail("match.exclude_paths", "every entry must start with '/'");
        }
        Ok(())
    }
}

fn is_method(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase())
}

fn default_include_paths() -> Vec<String> {
    vec!["/".into()]
}

fn default_exclude_paths() -> Vec<String> {
    ["/health", "/metrics", "/ready"].map(String::from).to_vec()
}
