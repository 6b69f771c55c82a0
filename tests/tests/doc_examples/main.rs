//! The examples of `README.md` and `envoy/README.md`, run and checked as a reader
//! would use them: the render commands as they are written, every config they render
//! validated by `envoy --mode validate`, one of them run for real against a control
//! plane and shown to count, and the JSON and YAML examples read by the filter's own
//! parser or held against the shipped configs.
//!
//! An example is found by the marker line right before its fence
//! (`<!-- example: NAME … -->`, see [`markdown`]); a missing, doubled or stray marker
//! fails, and so does a JSON, YAML or render-envoy.sh block nobody marked.
//!
//! # What the render example may have replaced
//! The block runs as written, in a directory laid out like the repository
//! ([`shell::Sandbox`]), with `TOLLGATE_DECISION_TOKEN` set (the example reads the
//! control plane's token from it), and `cargo` standing in for the one build it asks
//! for. Only for the gateway that runs for real are numbers replaced: its listen, admin
//! and upstream ports by free ones, and its control-plane port by the running control
//! plane's listener that README.md's `tollgate serve` example gives that port
//! (`--decision-listen` or `--listen`). `/etc/envoy/jwks.json` becomes the test JWKS,
//! which Envoy reads when it validates the reference config.
//!
//! # Layout
//! - [`markdown`] — the fenced blocks of the docs and the marked examples.
//! - [`shell`] — running a shell example, and reading its render-envoy.sh calls.
//! - [`webhooks`] — the Webhooks section's delivery and verification examples, held to
//!   a real delivery.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod markdown;
mod shell;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tollgate_e2e::admin::AdminStack;
use tollgate_e2e::control_plane::DECISION_TOKEN;
use tollgate_e2e::envoy::{jwks_path, wasm_path, Envoy, EnvoySettings, Exit};
use tollgate_e2e::process::{free_port, repo_root};
use tollgate_e2e::rendered::Rendered;
use tollgate_e2e::response::header;
use tollgate_e2e::upstream::Upstream;
use tollgate_e2e::Template;
use tollgate_protocol::{FailureMode, FilterConfig, QuotaView};

use markdown::{blocks, example, DOCS};
use shell::{flag_port, render_calls, replace_numbers, RenderCall, Sandbox};

/// Every example the docs mark, by doc and name: each is used by a test below.
const EXAMPLES: [(&str, &str); 13] = [
    ("README.md", "serve"),
    ("README.md", "filter-config"),
    ("README.md", "export-csv"),
    ("README.md", "export-ndjson"),
    ("README.md", "export-cloudevents"),
    ("README.md", "webhook-delivery"),
    ("README.md", "webhook-verify"),
    ("envoy/README.md", "render"),
    ("envoy/README.md", "smallest-filter-config"),
    ("envoy/README.md", "every-filter-field"),
    ("envoy/README.md", "jwt-authn"),
    ("envoy/README.md", "quota-view"),
    ("envoy/README.md", "priced-cost"),
];

/// Where the render example names the JWKS file of a real deployment.
const DEPLOYED_JWKS: &str = "/etc/envoy/jwks.json";

/// The render example, its render-envoy.sh calls, and the script to run: as written
/// but for the JWKS file, which must exist for Envoy to validate the reference config.
fn render_example() -> (String, Vec<RenderCall>) {
    let block = example("envoy/README.md", "render", "sh").unwrap();
    let calls = render_calls(&block.body).unwrap();
    assert!(
        !calls.is_empty(),
        "the render example calls no render-envoy.sh"
    );
    let script = block
        .body
        .replace(DEPLOYED_JWKS, &jwks_path().display().to_string());
    (script, calls)
}

/// `envoy --mode validate` accepted the config.
fn assert_valid(exit: &Exit, what: &str) {
    let ok = exit.status.is_some_and(|s| s.success()) && exit.log.contains(" OK");
    assert!(
        ok,
        "Envoy refused {what} ({:?}):\n{}",
        exit.status, exit.log
    );
}

#[test]
fn every_marked_example_is_tested_and_every_json_yaml_or_render_block_is_marked() {
    let mut marked = BTreeSet::new();
    for doc in DOCS {
        for block in blocks(doc).unwrap() {
            let must_be_marked = ["json", "yaml"].contains(&block.lang.as_str())
                || block.body.contains("render-envoy.sh");
            match &block.example {
                Some(name) => assert!(
                    marked.insert((doc, name.clone())),
                    "{doc}:{}: example {name:?} is marked twice",
                    block.line
                ),
                None => assert!(
                    !must_be_marked,
                    "{doc}:{}: a ```{} example nobody tests: mark it \
                     (`<!-- example: NAME … -->` right before the fence) and test it in \
                     tests/tests/doc_examples/",
                    block.line, block.lang
                ),
            }
        }
    }
    let tested: BTreeSet<(&str, String)> = EXAMPLES
        .iter()
        .map(|(doc, name)| (*doc, name.to_string()))
        .collect();
    assert_eq!(
        marked, tested,
        "the examples the docs mark are not the ones tests/tests/doc_examples/ tests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_readme_render_example_as_written_renders_configs_envoy_accepts() {
    wasm_path().expect("the filter is built");
    let (script, calls) = render_example();
    let sandbox = Sandbox::new().unwrap();

    sandbox
        .run(&script, &[("TOLLGATE_DECISION_TOKEN", DECISION_TOKEN)])
        .unwrap();

    for call in &calls {
        let path = sandbox.file(&call.output);
        let rendered = Rendered::read(&path).unwrap();
        // What the call asked for is what the filter will run with.
        let filter = rendered.filter_config().unwrap();
        let failure_mode = match call.args[4].as_str() {
            "open" => FailureMode::Open,
            "closed" => FailureMode::Closed,
            other => panic!("the example asks for failure mode {other:?}"),
        };
        assert_eq!(filter.failure_mode, failure_mode, "{}", call.output);
        assert_eq!(
            filter.control_plane.timeout_ms.to_string(),
            call.args[5],
            "{}",
            call.output
        );
        let token = filter.control_plane.token.as_ref().map(|t| t.expose());
        assert_eq!(
            token,
            Some(DECISION_TOKEN),
            "{}: the filter must present the control plane's --decision-token",
            call.output
        );
        assert_eq!(
            rendered.control_plane_ports().unwrap(),
            [call.port(3).parse::<u64>().unwrap()],
            "{}",
            call.output
        );
        let exit = Envoy::validate_rendered(sandbox.path(), &path)
            .await
            .unwrap();
        assert_valid(&exit, &call.output);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_readme_gateway_example_counts_a_request_through_the_decision_listener() {
    wasm_path().expect("the filter is built");
    // Which port is which listener of the control plane, as README.md starts it.
    let serve = example("README.md", "serve", "sh").unwrap();
    let admin_listener = flag_port(&serve.body, "--listen").unwrap();
    let decision_listener = flag_port(&serve.body, "--decision-listen").unwrap();
    assert_ne!(admin_listener, decision_listener);
    let (script, calls) = render_example();
    let gateway = &calls[0];

    let stack = AdminStack::start().await;
    let upstream = Upstream::start().await.unwrap();
    let control_plane = &stack.control_plane;
    let reached = if gateway.port(3) == decision_listener {
        control_plane.decision_port
    } else if gateway.port(3) == admin_listener {
        control_plane.port
    } else {
        panic!(
            "the example's control-plane port {} is neither README.md's --decision-listen \
             ({decision_listener}) nor its --listen ({admin_listener})",
            gateway.port(3)
        )
    };
    let (port, admin_port) = (free_port().unwrap(), free_port().unwrap());
    let numbers = BTreeMap::from([
        (gateway.port(0).to_string(), port.to_string()),
        (gateway.port(1).to_string(), admin_port.to_string()),
        (gateway.port(2).to_string(), upstream.port.to_string()),
        (gateway.port(3).to_string(), reached.to_string()),
    ]);
    let sandbox = Sandbox::new().unwrap();
    sandbox
        .run(
            &replace_numbers(&script, &numbers),
            &[("TOLLGATE_DECISION_TOKEN", DECISION_TOKEN)],
        )
        .unwrap();
    let tier = json!({"name": "docs", "limits": [
        {"resource": "requests", "period": "month", "quota": 10}
    ]});
    let (status, body) = stack
        .send(stack.admin(Method::POST, "/tiers").json(&tier))
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let tenant = json!({"id": "acme", "tier": "docs"});
    let (status, body) = stack
        .send(stack.admin(Method::POST, "/tenants").json(&tenant))
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let envoy = Envoy::start_rendered(
        stack.dir.path(),
        &sandbox.file(&gateway.output),
        port,
        admin_port,
    )
    .await
    .unwrap();

    let response = reqwest::Client::new()
        .get(format!("{}/docs", envoy.url()))
        .header("x-tenant-id", "acme")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "x-quota-status"),
        "ok",
        "the gateway got no decision from port {} (unknown = uncounted)",
        gateway.port(3)
    );
    assert_eq!(header(&response, "x-quota-used"), "1");
    let (status, usage) = stack
        .send(stack.admin(Method::GET, "/tenants/acme/usage"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let used = usage["usage"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["resource"] == "requests"))
        .map(|row| row["used"].clone());
    assert_eq!(used, Some(json!(1)), "usage in the admin API: {usage}");
    assert_eq!(upstream.received("acme").requests, 1);
    assert_eq!(
        upstream.last_header("acme", "x-quota-status").as_deref(),
        Some("ok")
    );
    assert_eq!(envoy.filter_stat("failed_open").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_filter_configuration_is_a_config_the_filter_and_envoy_accept() {
    let block = example("README.md", "filter-config", "json").unwrap();

    let config = FilterConfig::from_json(block.body.as_bytes())
        .unwrap_or_else(|e| panic!("README.md:{}: {e}", block.line));

    assert_eq!(config.control_plane.cluster, "tollgate_control_plane");
    let dir = tempfile::tempdir().unwrap();
    let settings = EnvoySettings {
        template: Template::Gateway,
        upstream_port: 8080,
        control_plane_ports: vec![8082],
        filter_config: serde_json::from_str(&block.body).unwrap(),
        extra_clusters: String::new(),
        stream_idle_timeout: Duration::from_secs(60),
    };
    let exit = Envoy::validate(dir.path(), &settings).await.unwrap();
    assert_valid(&exit, "README.md's filter configuration");
}

#[test]
fn envoy_readme_every_field_example_shows_the_real_defaults_of_every_field() {
    let smallest = example("envoy/README.md", "smallest-filter-config", "json").unwrap();
    let every = example("envoy/README.md", "every-filter-field", "json").unwrap();

    let smallest = FilterConfig::from_json(smallest.body.as_bytes()).unwrap();
    let documented: Value = serde_json::from_str(&every.body).unwrap();
    let every = FilterConfig::from_json(every.body.as_bytes()).unwrap();

    assert_eq!(
        every, smallest,
        "a default in envoy/README.md is not the filter's"
    );
    let fields = serde_json::to_value(&smallest).unwrap();
    let missing = missing_fields(&fields, &documented, "");
    assert!(
        missing.is_empty(),
        "envoy/README.md's every-field example lacks {missing:?}"
    );
}

/// The fields of `config` (dotted paths) that `documented` does not have.
fn missing_fields(config: &Value, documented: &Value, at: &str) -> Vec<String> {
    let Value::Object(fields) = config else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    for (name, value) in fields {
        let path = format!("{at}{name}");
        match documented.get(name) {
            None => missing.push(path),
            Some(doc) => missing.extend(missing_fields(value, doc, &format!("{path}."))),
        }
    }
    missing
}

#[test]
fn envoy_readme_quota_view_example_is_what_the_control_plane_answers_field_for_field() {
    let block = example("envoy/README.md", "quota-view", "json").unwrap();
    let documented: Value = serde_json::from_str(&block.body).unwrap();
    let view: QuotaView = serde_json::from_value(documented.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&view).unwrap(),
        documented,
        "envoy/README.md:{}: the view example has a field the answer lacks, or lacks one",
        block.line
    );
    assert!(view.limits.iter().filter(|l| l.binding).count() == 1);
}

#[test]
fn envoy_readme_priced_cost_example_prices_as_its_text_works_out() {
    let block = example("envoy/README.md", "priced-cost", "json").unwrap();
    let priced: Value = serde_json::from_str(&block.body).unwrap();
    let config = json!({"control_plane": {"cluster": "cp"}, "costs": {"priced": priced}});
    let config = FilterConfig::from_json(config.to_string().as_bytes()).unwrap();
    let priced = config.costs.priced.unwrap();
    // 1234 prompt tokens (1000 of them cached), 567 completion tokens.
    let counts = [1234, 567, 1000];
    let price = |model| priced.price(&priced.weights_of(Some(model)).unwrap(), &counts);
    assert_eq!(price("gpt-4o"), 7505);
    assert_eq!(price("gpt-4o-mini"), 451);
    assert_eq!(price("gpt-4o-2024-08-06"), 7505, "the snapshot's prefix");
    assert_eq!(
        priced.reserves(),
        [
            ("cost_microusd", 7500),
            ("prompt_tokens", 1000),
            ("completion_tokens", 500)
        ]
        .map(|(r, n)| (r.to_string(), n))
        .to_vec()
    );
    assert!(priced.includes_usage_at("/v1/chat/completions"));
}

#[test]
fn envoy_readme_jwt_example_is_what_reference_yaml_runs() {
    let block = example("envoy/README.md", "jwt-authn", "yaml").unwrap();
    let documented: Value = serde_norway::from_str(&block.body).unwrap();
    let output = std::process::Command::new(repo_root().join("scripts/render-envoy.sh"))
        .current_dir(repo_root())
        .args(["10000", "9901", "8080", "8082", "open", "200", "/x.wasm"])
        .env("TEMPLATE", "envoy/reference.yaml")
        .env("DECISION_TOKEN", "secret")
        .env("JWKS_PATH", DEPLOYED_JWKS)
        .env_remove("FILTER_CONFIG")
        .env_remove("STREAM_IDLE_TIMEOUT")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference = Rendered::parse(&String::from_utf8_lossy(&output.stdout)).unwrap();

    let names = |filters: &[Value]| -> Vec<String> {
        filters
            .iter()
            .map(|f| f["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let filters = documented["http_filters"]
        .as_array()
        .expect("the example is an http_filters list");
    assert_eq!(names(filters), names(reference.http_filters().unwrap()));
    let jwt = "envoy.filters.http.jwt_authn";
    assert_eq!(
        filters[0]["typed_config"],
        reference.http_filter(jwt).unwrap()["typed_config"],
        "envoy/README.md:{}: the jwt_authn example differs from reference.yaml's",
        block.line
    );
}

/// The billing export's three examples are what a control plane exports, byte for byte,
/// for the one window they show, written to the history as the flusher writes it.
#[tokio::test]
async fn readme_export_examples_are_what_the_export_answers() {
    let stack = AdminStack::start().await;
    stack
        .psql(
            "INSERT INTO usage_history \
                 (tenant_id, resource, series, window_start, window_end, used, epoch) \
             VALUES ('acme', 'requests', 'day', '2026-05-01T00:00:00Z', \
                     '2026-05-02T00:00:00Z', 18234, 0)",
        )
        .unwrap();
    for (name, lang, format) in [
        ("export-csv", "csv", "csv"),
        ("export-ndjson", "json", "ndjson"),
        ("export-cloudevents", "json", "cloudevents"),
    ] {
        let block = example("README.md", name, lang).unwrap();
        let path = format!(
            "/usage/export?from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z\
             &format={format}"
        );
        let response = stack.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.text().await.unwrap();
        assert_eq!(
            body, block.body,
            "README.md:{}: the {format} example is not what the export answers",
            block.line
        );
    }
}
