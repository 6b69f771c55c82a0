//! `scripts/render-envoy.sh` as a user runs it: every argument and setting it is given
//! ends up in the config, for every template it takes, or the call is refused with a
//! message that names what is wrong — never a config that silently ignores one.
//!
//! The script only fills in text, so these tests need no Envoy: they read the rendered
//! YAML and parse the filter config with the filter's own parser.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use tollgate_e2e::process::repo_root;
use tollgate_e2e::rendered::Rendered;
use tollgate_protocol::FailureMode;

/// The script's settings: none leaks in from the environment the tests run in.
const SETTINGS: [&str; 5] = [
    "TEMPLATE",
    "DECISION_TOKEN",
    "FILTER_CONFIG",
    "JWKS_PATH",
    "STREAM_IDLE_TIMEOUT",
];

/// Arguments 1 to 7 with a failure mode and a deadline that are not the defaults.
const ARGS: [&str; 7] = [
    "10000",
    "9901",
    "8080",
    "8082",
    "closed",
    "500",
    "/opt/tollgate/tollgate_filter.wasm",
];

/// Settings given to one call, by name.
type Settings<'a> = &'a [(&'a str, &'a str)];

/// Runs the script from the repository root with `args` and only the settings `env`.
fn render(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(repo_root().join("scripts/render-envoy.sh"));
    command.current_dir(repo_root()).args(args);
    for name in SETTINGS {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("render-envoy.sh runs")
}

/// The rendered config of a call that must succeed.
fn rendered(args: &[&str], env: &[(&str, &str)]) -> Rendered {
    let output = render(args, env);
    assert!(
        output.status.success(),
        "render-envoy.sh {args:?} with {env:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Rendered::parse(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

/// What a refused call printed on stderr, after asserting its exit code and that it
/// printed no config (nothing half-rendered lands in `> envoy.yaml`).
fn refused(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let output = render(args, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "render-envoy.sh {args:?} with {env:?}:\n{stderr}"
    );
    assert!(output.stdout.is_empty(), "a refused call printed a config");
    stderr
}

fn assert_says(stderr: &str, what: &str) {
    assert!(stderr.contains(what), "expected {what:?} in:\n{stderr}");
}

#[test]
fn reference_template_takes_the_failure_mode_deadline_token_and_idle_timeout_given() {
    let config = rendered(
        &ARGS,
        &[
            ("TEMPLATE", "envoy/reference.yaml"),
            ("DECISION_TOKEN", "s3cret-token"),
            ("STREAM_IDLE_TIMEOUT", "5s"),
            ("JWKS_PATH", "/etc/envoy/jwks.json"),
        ],
    );

    let filter = config.filter_config().unwrap();
    assert_eq!(filter.failure_mode, FailureMode::Closed);
    assert_eq!(filter.control_plane.timeout_ms, 500);
    let token = filter.control_plane.token.as_ref().expect("a token");
    assert_eq!(token.expose(), "s3cret-token");
    assert_eq!(config.control_plane_ports().unwrap(), [8082]);
    let manager = config.connection_manager().unwrap();
    assert_eq!(manager["stream_idle_timeout"], "5s");
    let jwt = config.http_filter("envoy.filters.http.jwt_authn").unwrap();
    assert_eq!(
        jwt["typed_config"]["providers"]["tollgate_idp"]["local_jwks"]["filename"],
        "/etc/envoy/jwks.json"
    );
}

#[test]
fn gateway_template_puts_the_arguments_and_token_into_its_default_filter_config() {
    let config = rendered(
        &ARGS,
        &[
            ("DECISION_TOKEN", "s3cret-token"),
            ("STREAM_IDLE_TIMEOUT", "2.5s"),
        ],
    );

    let filter = config.filter_config().unwrap();
    assert_eq!(filter.failure_mode, FailureMode::Closed);
    assert_eq!(filter.control_plane.timeout_ms, 500);
    assert_eq!(filter.control_plane.cluster, "tollgate_control_plane");
    let token = filter.control_plane.token.as_ref().expect("a token");
    assert_eq!(token.expose(), "s3cret-token");
    assert_eq!(config.control_plane_ports().unwrap(), [8082]);
    assert_eq!(
        config.connection_manager().unwrap()["stream_idle_timeout"],
        "2.5s"
    );

    let without_token = rendered(&ARGS, &[]).filter_config().unwrap();
    assert!(without_token.control_plane.token.is_none());
}

#[test]
fn own_filter_config_takes_the_arguments_and_token_through_their_placeholders() {
    let own = r#"{"control_plane": {"cluster": "tollgate_control_plane", "timeout_ms": {{TIMEOUT_MS}}, "token": "{{DECISION_TOKEN}}"}, "failure_mode": "{{FAILURE_MODE}}", "shadow": true}"#;
    let config = rendered(
        &ARGS,
        &[("FILTER_CONFIG", own), ("DECISION_TOKEN", "s3cret-token")],
    );

    let filter = config.filter_config().unwrap();
    assert!(filter.shadow);
    assert_eq!(filter.failure_mode, FailureMode::Closed);
    assert_eq!(filter.control_plane.timeout_ms, 500);
    let token = filter.control_plane.token.as_ref().expect("a token");
    assert_eq!(token.expose(), "s3cret-token");
}

#[test]
fn own_filter_config_that_would_drop_an_argument_is_refused_with_where_it_goes() {
    let stderr = refused(
        &ARGS,
        &[
            (
                "FILTER_CONFIG",
                r#"{"control_plane": {"cluster": "tollgate_control_plane"}, "shadow": true}"#,
            ),
            ("DECISION_TOKEN", "s3cret-token"),
        ],
        1,
    );

    assert_says(
        &stderr,
        "FAILURE_MODE (argument 5, closed) would be ignored",
    );
    assert_says(
        &stderr,
        r#"write "failure_mode": "{{FAILURE_MODE}}" into FILTER_CONFIG"#,
    );
    assert_says(&stderr, "TIMEOUT_MS (argument 6, 500) would be ignored");
    assert_says(&stderr, "DECISION_TOKEN would be ignored");
}

#[test]
fn reference_template_without_a_decision_token_or_jwks_names_the_placeholders_and_settings() {
    let stderr = refused(&ARGS, &[("TEMPLATE", "envoy/reference.yaml")], 1);

    assert_says(
        &stderr,
        "render-envoy.sh: {{DECISION_TOKEN}} is left unfilled: set DECISION_TOKEN=",
    );
    // Not the test keys by default: their private half is in the repository.
    assert_says(
        &stderr,
        "render-envoy.sh: {{JWKS_PATH}} is left unfilled: set JWKS_PATH=",
    );
}

#[test]
fn settings_a_template_has_no_place_for_are_refused_by_name() {
    let stderr = refused(
        &ARGS,
        &[
            ("TEMPLATE", "envoy/reference.yaml"),
            ("DECISION_TOKEN", "s3cret-token"),
            ("FILTER_CONFIG", r#"{"control_plane": {"cluster": "x"}}"#),
        ],
        1,
    );
    assert_says(
        &stderr,
        "FILTER_CONFIG would be ignored: envoy/reference.yaml has no {{FILTER_CONFIG}}",
    );

    let stderr = refused(&ARGS, &[("JWKS_PATH", "/etc/envoy/jwks.json")], 1);
    assert_says(
        &stderr,
        "JWKS_PATH would be ignored: envoy/gateway.yaml has no {{JWKS_PATH}}",
    );

    // docker.yaml is filled in by docker compose, not by this script: every argument
    // would be lost.
    let stderr = refused(
        &ARGS,
        &[
            ("TEMPLATE", "envoy/docker.yaml"),
            ("DECISION_TOKEN", "s3cret-token"),
        ],
        1,
    );
    for argument in [
        "LISTEN_PORT (argument 1)",
        "CONTROL_PLANE_PORT (argument 4)",
        "FAILURE_MODE (argument 5, closed)",
        "WASM_PATH (argument 7)",
    ] {
        assert_says(
            &stderr,
            &format!("{argument} would be ignored: envoy/docker.yaml has no"),
        );
    }
}

#[test]
fn placeholder_nobody_fills_is_named() {
    let own = r#"{"control_plane": {"cluster": "tollgate_control_plane", "timeout_ms": {{TIMEOUT_MS}}}, "failure_mode": "{{FAILURE_MODE}}", "shadow": {{SHADOW}}}"#;
    let stderr = refused(&ARGS, &[("FILTER_CONFIG", own)], 1);

    assert_says(&stderr, "{{SHADOW}} is left unfilled");
}

#[test]
fn wrong_argument_counts_and_values_are_refused_with_the_usage() {
    let with = |index: usize, value: &'static str| {
        let mut args = ARGS;
        args[index] = value;
        args
    };
    let cases: Vec<(Vec<&str>, Settings, &str)> = vec![
        (vec![], &[], "expected 7 arguments, got 0"),
        (ARGS[..6].to_vec(), &[], "expected 7 arguments, got 6"),
        (
            [&ARGS[..], &["extra"]].concat(),
            &[],
            "expected 7 arguments, got 8",
        ),
        (
            with(0, "80a2").to_vec(),
            &[],
            "LISTEN_PORT must be a port number (1 to 65535), not '80a2'",
        ),
        (
            with(1, "0").to_vec(),
            &[],
            "ADMIN_PORT must be a port number",
        ),
        (
            with(2, "65536").to_vec(),
            &[],
            "UPSTREAM_PORT must be a port number",
        ),
        (
            with(3, "").to_vec(),
            &[],
            "CONTROL_PLANE_PORT must be a port number",
        ),
        (
            with(4, "maybe").to_vec(),
            &[],
            "FAILURE_MODE must be open or closed, not 'maybe'",
        ),
        (
            with(5, "0").to_vec(),
            &[],
            "TIMEOUT_MS must be a whole number of milliseconds from 1 to 60000, not '0'",
        ),
        (with(5, "2s").to_vec(), &[], "TIMEOUT_MS must be"),
        (with(5, "60001").to_vec(), &[], "TIMEOUT_MS must be"),
        (with(6, "").to_vec(), &[], "WASM_PATH must be a path"),
        (
            ARGS.to_vec(),
            &[("TEMPLATE", "envoy/nope.yaml")],
            "TEMPLATE=envoy/nope.yaml: no such file",
        ),
        (
            ARGS.to_vec(),
            &[("DECISION_TOKEN", "two words")],
            "DECISION_TOKEN must be 1 to 4096 printable characters",
        ),
        (
            ARGS.to_vec(),
            &[("STREAM_IDLE_TIMEOUT", "60")],
            "STREAM_IDLE_TIMEOUT must be a duration in seconds",
        ),
    ];
    for (args, env, message) in cases {
        let stderr = refused(&args, env, 2);
        assert_says(&stderr, &format!("render-envoy.sh: {message}"));
        assert_says(&stderr, "Usage: render-envoy.sh LISTEN_PORT ADMIN_PORT");
    }
}

#[test]
fn help_prints_the_usage_and_every_setting() {
    let output = render(&["--help"], &[]);

    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Usage: render-envoy.sh LISTEN_PORT"),
        "{help}"
    );
    for setting in SETTINGS {
        assert!(help.contains(setting), "{setting} is not in:\n{help}");
    }
}
