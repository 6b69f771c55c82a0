//! What the shipped observability files hold: the rule files' expressions, the
//! dashboard's queries and variables, the Grafana provisioning and the compose mounts.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use tollgate_e2e::process::repo_root;
use tollgate_e2e::prometheus::rule_files;

/// One expression of a rule file or the dashboard, and where it is.
#[derive(Debug, Clone)]
pub struct Query {
    /// `file: rule name` or `dashboard: panel title`, for failure messages.
    pub source: String,
    /// The PromQL, as written (Grafana variables and all).
    pub expr: String,
}

/// A file under the repository, as YAML.
pub fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rule of every shipped rule file (`record` or `alert`, `expr`, `for`, …), with
/// the file it is in.
pub fn rules() -> Vec<(String, Value)> {
    let mut rules = Vec::new();
    for path in rule_files().unwrap() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: Value = serde_norway::from_str(&text).unwrap();
        let name = file_name(&path);
        for group in file["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                rules.push((name.clone(), rule.clone()));
            }
        }
    }
    assert!(!rules.is_empty(), "no rules in the shipped rule files");
    rules
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The expression of every rule.
pub fn rule_queries() -> Vec<Query> {
    rules()
        .into_iter()
        .map(|(file, rule)| {
            let name = rule["record"].as_str().or(rule["alert"].as_str()).unwrap();
            Query {
                source: format!("{file}: {name}"),
                expr: rule["expr"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// The series names the recording rules produce.
pub fn recorded_names() -> BTreeSet<String> {
    rules()
        .into_iter()
        .filter_map(|(_, rule)| rule["record"].as_str().map(String::from))
        .collect()
}

/// The shipped dashboard.
pub fn dashboard() -> Value {
    let path = repo_root().join("observability/grafana/dashboards/tollgate.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every panel of the dashboard, those inside collapsed rows too (rows themselves
/// excluded).
pub fn panels(dashboard: &Value) -> Vec<Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        } else {
            panels.push(panel.clone());
        }
    }
    panels
}

/// Every target expression of the dashboard's panels.
pub fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                source: format!("dashboard: {}", panel["title"].as_str().unwrap()),
                expr: target["expr"].as_str().unwrap().to_string(),
            });
        }
    }
    queries
}

/// The metric each query variable reads its values from
/// (`label_values(METRIC, label)`), by variable name.
pub fn variable_metrics(dashboard: &Value) -> Vec<(String, String)> {
    let mut metrics = Vec::new();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|args| args.rsplit_once(','))
            .map(|(selector, _label)| selector.trim().to_string())
            .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(…, …)"));
        metrics.push((variable["name"].as_str().unwrap().to_string(), inner));
    }
    metrics
}

/// A dashboard query as Grafana would send it with every tenant selected: its
/// variables filled in.
pub fn for_prometheus(expr: &str) -> String {
    let filled = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$tenant", ".*");
    assert!(
        !filled.contains('$'),
        "a variable the test does not fill in: {expr}"
    );
    filled
}

/// The host paths docker-compose.yml mounts into `service`, by path in the container.
pub fn compose_mounts(service: &str) -> Vec<(String, String)> {
    let compose = yaml("docker-compose.yml");
    compose["services"][service]["volumes"]
        .as_array()
        .unwrap_or_else(|| panic!("docker-compose.yml: {service} mounts nothing"))
        .iter()
        .filter_map(|volume| {
            let mut parts = volume.as_str()?.split(':');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}
