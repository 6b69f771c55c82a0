//! The shipped files, read as Prometheus, Grafana and docker-compose will: what an
//! operator relies on without running them (compose cannot run here; Grafana is not
//! packaged).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::sources::{compose_mounts, dashboard, panels, rules, yaml};

#[test]
fn every_alert_has_a_for_a_severity_a_summary_a_description_and_a_runbook() {
    let mut faults = Vec::new();
    let mut alerts = 0;
    for (file, rule) in rules() {
        let Some(name) = rule["alert"].as_str() else {
            continue;
        };
        alerts += 1;
        if rule["for"].as_str().is_none_or(str::is_empty) {
            faults.push(format!("{file}: {name} has no `for`"));
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !["critical", "warning", "info"].contains(&severity) {
            faults.push(format!("{file}: {name} has severity {severity:?}"));
        }
        for annotation in ["summary", "description", "runbook"] {
            let text = rule["annotations"][annotation].as_str();
            if text.is_none_or(|text| text.trim().is_empty()) {
                faults.push(format!("{file}: {name} has no {annotation}"));
            }
        }
    }
    assert!(alerts >= 10, "only {alerts} alerts found");
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn the_dashboard_reads_the_provisioned_datasource_and_every_panel_says_what_it_shows() {
    let provisioned = yaml("observability/grafana/provisioning/datasources/prometheus.yml");
    let uid = provisioned["datasources"][0]["uid"].as_str().unwrap();
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    assert_eq!(
        datasource["current"]["value"], uid,
        "the datasource variable defaults to the provisioned Prometheus"
    );
    let by_variable = format!("${{{}}}", datasource["name"].as_str().unwrap());

    let mut ids = BTreeSet::new();
    let all: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    for panel in &all {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24,
            "{} is wider than the dashboard",
            panel["title"]
        );
    }
    let panels = panels(&dashboard);
    assert!(panels.len() >= 15, "only {} panels", panels.len());
    for panel in &panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 20),
            "{title}: no description of what it shows"
        );
        assert_eq!(panel["datasource"]["uid"], by_variable, "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], by_variable, "{title}");
        }
    }
}

#[test]
fn docker_compose_mounts_the_rules_the_dashboard_and_its_provisioning_where_they_are_read() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];

    // Prometheus reads the shipped config, whose relative rule_files resolve beside it.
    let prometheus = compose_mounts("prometheus");
    assert!(
        prometheus.contains(&(
            "./observability/prometheus".into(),
            "/etc/prometheus".into()
        )),
        "{prometheus:?}"
    );
    let command: Vec<&str> = services["prometheus"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(command.contains(&"--config.file=/etc/prometheus/prometheus.yml"));

    // Its targets are compose services, on the ports they serve metrics on.
    let config = yaml("observability/prometheus/prometheus.yml");
    let listen = services["control-plane"]["environment"]["TOLLGATE_LISTEN"]
        .as_str()
        .unwrap();
    let expected = [
        (
            "tollgate-control-plane",
            format!("control-plane:{}", port_of(listen)),
        ),
        ("tollgate-envoy", "envoy:9901".to_string()),
    ];
    for (job, target) in expected {
        let scrape = config["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["job_name"] == job)
            .unwrap_or_else(|| panic!("no job {job}"));
        assert_eq!(scrape["static_configs"][0]["targets"][0], target.as_str());
        let service = target.split(':').next().unwrap();
        assert!(services[service].is_object(), "no service {service}");
    }

    // Grafana: provisioning where it looks for it, dashboards where the provider reads.
    let grafana = compose_mounts("grafana");
    let provider = yaml("observability/grafana/provisioning/dashboards/tollgate.yml");
    let dashboards_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    for mount in [
        (
            "./observability/grafana/provisioning",
            "/etc/grafana/provisioning",
        ),
        ("./observability/grafana/dashboards", dashboards_path),
    ] {
        assert!(
            grafana.contains(&(mount.0.to_string(), mount.1.to_string())),
            "{mount:?} not in {grafana:?}"
        );
    }
    let datasource = yaml("observability/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        datasource["datasources"][0]["url"], "http://prometheus:9090",
        "Grafana reaches the compose Prometheus"
    );

    // Pinned images, and a health check on each.
    for service in ["prometheus", "grafana"] {
        let image = services[service]["image"].as_str().unwrap();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "{service}: unpinned image {image}"
        );
        assert!(
            services[service]["healthcheck"]["test"].is_array(),
            "{service}: no healthcheck"
        );
    }
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').map(|(_, port)| port).unwrap()
}
