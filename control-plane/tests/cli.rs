//! The `tollgate` admin subcommands and `tollgate apply`, run as the real binary against
//! a real `tollgate serve` with its own PostgreSQL and Redis (from the end-to-end
//! harness). Each test shares one server across its assertions.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN};
use tollgate_e2e::postgres::Postgres;
use tollgate_e2e::redis::Redis;

/// A running control plane with its stores, and a directory for files.
struct Server {
    control_plane: ControlPlane,
    _redis: Redis,
    _postgres: Postgres,
    dir: TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let postgres = Postgres::start(dir.path()).await.unwrap();
        let redis = Redis::start(dir.path()).await.unwrap();
        let control_plane = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
            .await
            .unwrap();
        // `serve` applies migrations in the background: wait until it can answer.
        let ready = format!("{}/ready", control_plane.url());
        let http = reqwest::Client::new();
        tollgate_e2e::eventually(Duration::from_secs(60), "GET /ready answers 200", || {
            let request = http.get(&ready).send();
            async move { request.await.is_ok_and(|r| r.status().is_success()) }
        })
        .await
        .unwrap();
        Server {
            control_plane,
            _redis: redis,
            _postgres: postgres,
            dir,
        }
    }

    /// Runs `tollgate <args>` against this server with the admin token.
    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_token(ADMIN_TOKEN, args).await
    }

    async fn run_with_token(&self, token: &str, args: &[&str]) -> Run {
        self.run_with_env(token, &[], args).await
    }

    /// Runs `tollgate <args>` with `token` and the environment variables `env`.
    async fn run_with_env(&self, token: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .envs(env.iter().copied())
            .env("TOLLGATE_SERVER", self.control_plane.url())
            .env("TOLLGATE_ADMIN_TOKEN", token)
            .env("TOLLGATE_ACTOR", "cli-test")
            .output()
            .await
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn apply(&self, file: &Path, flags: &[&str]) -> Run {
        let path = file.to_str().unwrap();
        let mut args = vec!["apply", "-f", path];
        args.extend_from_slice(flags);
        self.run(&args).await
    }
}

const QUOTAS: &str = "\
tiers:
  - name: free
    description: Free plan
    limits:
      - {resource: requests, period: minute, quota: 60}
      - {resource: request_bytes, period: month, quota: 1073741824, overage: 0, warn_at: 0.8}
  - name: pro
    limits:
      - {resource: requests, period: minute, quota: 600}
      - {resource: requests, period: hour, window: rolling, quota: 20000}
tenants:
  - id: acme
    tier: pro
    overcommit: 1.5
    labels: {plan: pro}
  - id: acme/research
    parent: acme
    tier: free
    mode: shadow
    limits:
      - {resource: requests, period: minute, quota: 120}
assignments:
  - {role: beta, tier: pro}
  - {default: true, tier: free}
  - {tenant: acme, tier: pro, expires_at: 2099-01-01T00:00:00Z}
";

#[tokio::test]
async fn apply_creates_updates_and_prunes_to_match_the_file() {
    let server = Server::start().await;
    let quotas = server.file("quotas.yaml", QUOTAS);

    // --dry-run prints the plan and changes nothing.
    let dry = server.apply(&quotas, &["--dry-run"]).await.ok();
    assert!(dry.stdout.contains("+ tier free"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .ends_with("8 to create, 0 to change, 0 to delete\n"),
        "{}",
        dry.stdout
    );
    let tiers = server.run(&["tier", "list", "--json"]).await.ok().json();
    assert_eq!(tiers["items"], serde_json::json!([]));

    // The first apply creates everything, parents first; a page size of 1 makes it
    // follow every listing's cursor.
    let first = server.apply(&quotas, &["--page-size", "1"]).await.ok();
    eprintln!("first apply:\n{}", first.stdout);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "+ tier free (limits: requests/minute/calendar quota 60; \
             request_bytes/month/calendar quota 1073741824)",
            "+ tier pro (limits: requests/minute/calendar quota 600; \
             requests/hour/rolling quota 20000)",
            "+ tenant acme (tier pro, overcommit 1.5, labels {\"plan\":\"pro\"})",
            "+ tenant acme/research (parent acme, tier free, mode shadow)",
            "+ override acme/research requests/minute/calendar quota 120",
            "+ assignment role beta -> pro",
            "+ assignment default -> free",
            "+ assignment tenant acme -> pro (until 2099-01-01T00:00:00Z)",
            "8 to create, 0 to change, 0 to delete",
        ]
    );

    // A second apply of the same file, reading the state page by page, changes nothing.
    let again = server.apply(&quotas, &["--page-size", "1"]).await.ok();
    assert_eq!(again.stdout, "no changes\n");

    // The tenant with a `/` in its id answers get, quota and usage.
    let research = server
        .run(&["tenant", "get", "acme/research", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(research["parent_id"], "acme");
    assert_eq!(research["mode"], "shadow");
    let quota = server
        .run(&["tenant", "quota", "acme/research", "--json"])
        .await
        .ok()
        .json();
    let own = &quota["levels"][0];
    assert_eq!(own["tenant"], "acme/research");
    assert!(
        own["limits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["quota"] == 120 && l["from"] == "override"),
        "{quota}"
    );
    let usage = server.run(&["usage", "get", "acme/research"]).await.ok();
    assert!(usage.stdout.contains("acme/research"), "{}", usage.stdout);

    // Changing a quota is one `~` line, and the server has the new value.
    let changed = QUOTAS
        .replace("period: minute, quota: 600", "period: minute, quota: 700")
        .replace("overcommit: 1.5", "overcommit: 2");
    let changed = server.file("changed.yaml", &changed);
    let update = server.apply(&changed, &[]).await.ok();
    assert_eq!(
        update.stdout,
        "~ tier pro: limits: requests/minute/calendar quota 600 -> 700\n\
         ~ tenant acme: overcommit 1.5 -> 2\n\
         0 to create, 2 to change, 0 to delete\n"
    );
    let pro = server
        .run(&["tier", "get", "pro", "--json"])
        .await
        .ok()
        .json();
    let minute = pro["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["period"] == "minute")
        .unwrap()
        .clone();
    assert_eq!(minute["quota"], 700);

    // Without --prune, what the file no longer names stays; with it, it goes.
    let smaller = "\
tiers:
  - name: pro
    limits:
      - {resource: requests, period: minute, quota: 700}
      - {resource: requests, period: hour, window: rolling, quota: 20000}
tenants:
  - {id: acme, tier: pro, overcommit: 2, labels: {plan: pro}}
assignments:
  - {tenant: acme, tier: pro, expires_at: 2099-01-01T00:00:00Z}
";
    let smaller = server.file("smaller.yaml", smaller);
    assert_eq!(
        server.apply(&smaller, &[]).await.ok().stdout,
        "no changes\n"
    );
    let prune = server.apply(&smaller, &["--prune"]).await.ok();
    assert_eq!(
        prune.stdout,
        "- assignment role beta -> pro\n\
         - assignment default -> free\n\
         - tenant acme/research\n\
         - tier free\n\
         0 to create, 0 to change, 4 to delete\n"
    );
    let gone = server.run(&["tenant", "get", "acme/research"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert!(gone.stderr.starts_with("error: 404 "), "{}", gone.stderr);
    let tiers = server.run(&["tier", "list", "--json"]).await.ok().json();
    let names: Vec<&str> = tiers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pro"]);
    assert_eq!(
        server.apply(&smaller, &["--prune"]).await.ok().stdout,
        "no changes\n"
    );
}

#[tokio::test]
async fn admin_commands_print_tables_json_and_errors() {
    let server = Server::start().await;

    server
        .run(&[
            "tier",
            "create",
            "free",
            "--description",
            "Free plan",
            "--limit",
            "requests:minute:100",
            "--limit",
            "request_bytes:month:1000000:200000:0.9",
            "--limit",
            "requests:rolling-hour:500",
        ])
        .await
        .ok();
    let table = server.run(&["tier", "list"]).await.ok();
    eprintln!("tier list:\n{}", table.stdout);
    let header = table.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("LIMITS"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("free"), "{}", table.stdout);
    assert!(
        table.stdout.contains("requests/hour/rolling quota 500"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("request_bytes/month/calendar quota 1000000, overage 200000, warn_at 0.9"),
        "{}",
        table.stdout
    );

    for args in [
        ["tenant", "create", "acme", "--tier", "free"].as_slice(),
        &[
            "tenant",
            "create",
            "acme/research",
            "--parent",
            "acme",
            "--tier",
            "free",
            "--label",
            "team=ml",
        ],
        &["tenant", "create", "acme/ops", "--parent", "acme"],
        &["assignment", "create", "--tier", "free", "--role", "beta"],
    ] {
        server.run(args).await.ok();
    }
    let children = server
        .run(&[
            "tenant",
            "list",
            "--parent",
            "acme",
            "--page-size",
            "1",
            "--json",
        ])
        .await
        .ok()
        .json();
    let ids: Vec<&str> = children["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme/ops", "acme/research"]);
    let first = server
        .run(&["tenant", "list", "--limit", "1", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert!(first["next_cursor"].is_string(), "{first}");

    let research = server.run(&["tenant", "get", "acme/research"]).await.ok();
    assert!(research.stdout.contains("team=ml"), "{}", research.stdout);
    let adjusted = server
        .run(&[
            "usage",
            "adjust",
            "acme/research",
            "--resource",
            "requests",
            "--period",
            "minute",
            "--delta",
            "5",
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(adjusted["changes"][0]["after"], 5);
    let usage = server
        .run(&["usage", "get", "acme/research", "--json"])
        .await
        .ok()
        .json();
    let own_minute = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| {
            row["tenant"] == "acme/research"
                && row["period"] == "minute"
                && row["window"] == "calendar"
        })
        .unwrap()
        .clone();
    assert_eq!(own_minute["used"], 5);
    let reset = server
        .run(&["usage", "reset", "acme/research", "--period", "minute"])
        .await
        .ok();
    assert!(reset.stdout.contains("BEFORE"), "{}", reset.stdout);

    let assignments = server
        .run(&["assignment", "list", "--kind", "role"])
        .await
        .ok();
    assert!(
        assignments.stdout.contains("beta"),
        "{}",
        assignments.stdout
    );
    let events = server
        .run(&["events", "list", "--limit", "3", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(events["items"].as_array().unwrap().len(), 3);
    assert_eq!(events["items"][0]["actor"], "cli-test");

    // A wrong token: exit 1 with the server's 401 detail.
    let denied = server.run_with_token("wrong", &["tier", "list"]).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(
        denied.stderr,
        "error: 401 missing or invalid bearer token\n"
    );
    assert!(!denied.stderr.contains("wrong"));

    // A conflict answered by the server: exit 1 with its status and detail.
    let busy = server.run(&["tenant", "delete", "acme"]).await;
    assert_eq!(busy.code, 1, "{busy:#?}");
    assert!(busy.stderr.starts_with("error: 409 "), "{}", busy.stderr);

    // Invalid input is a usage error (2) and nothing is sent.
    let bad = server.file(
        "bad.yaml",
        "tiers:\n  - name: free\n    limits:\n      - {resource: requests, period: minute, quota: 1, quotaa: 2}\n",
    );
    let refused = server.apply(&bad, &[]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("tiers[0].limits[0].quotaa: unknown field `quotaa`"),
        "{}",
        refused.stderr
    );
    let spec = server
        .run(&["tier", "create", "x", "--limit", "requests:fortnight:1"])
        .await;
    assert_eq!(spec.code, 2, "{spec:#?}");
    assert!(
        spec.stderr.contains("period: \"fortnight\""),
        "{}",
        spec.stderr
    );

    // The server refuses a change mid-way: apply stops there, says what was applied,
    // and exits 1.
    let greedy = server.file(
        "greedy.yaml",
        "tiers:\n  - {name: tiny, limits: [{resource: requests, period: minute, quota: 1}]}\n\
         tenants:\n  - {id: p, tier: tiny}\n  - {id: p/c, parent: p, tier: tiny, \
         limits: [{resource: requests, period: minute, quota: 100}]}\n",
    );
    let stopped = server.apply(&greedy, &[]).await;
    eprintln!("stopped apply:\n{}{}", stopped.stdout, stopped.stderr);
    assert_eq!(stopped.code, 1, "{stopped:#?}");
    let stderr: Vec<&str> = stopped.stderr.lines().collect();
    assert_eq!(
        stderr[..5],
        [
            "apply stopped at change 4 of 4: + override p/c requests/minute/calendar quota 100",
            "applied before it:",
            "  + tier tiny (limits: requests/minute/calendar quota 1)",
            "  + tenant p (tier tiny)",
            "  + tenant p/c (parent p, tier tiny)",
        ]
    );
    assert!(
        stderr[5].starts_with("error: 409 overcommit"),
        "{}",
        stopped.stderr
    );
    let rest = server.apply(&greedy, &["--dry-run"]).await.ok();
    assert_eq!(
        rest.stdout,
        "+ override p/c requests/minute/calendar quota 100\n1 to create, 0 to change, 0 to delete\n"
    );

    let orphan = server.file("orphan.yaml", "tenants:\n  - {id: x, parent: nowhere}\n");
    let refused = server.apply(&orphan, &[]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("tenants[0].parent: tenant nowhere is neither in the file nor on the server"),
        "{}",
        refused.stderr
    );
}

/// The secret the webhook tests hand the binary through the environment.
const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[tokio::test]
async fn webhooks_are_managed_from_the_command_line_and_applied_from_a_file() {
    let started = Server::start().await;
    let server = &started;
    let env = [("WH_SECRET", WEBHOOK_SECRET)];
    let run = |args: &'static [&'static str]| server.run_with_env(ADMIN_TOKEN, &env, args);
    run(&[
        "webhook",
        "create",
        "ops",
        "--url",
        "https://hooks.example.com/t",
        "--secret-env",
        "WH_SECRET",
        "--threshold",
        "80",
        "--threshold",
        "50",
        "--hard",
        "--tenant",
        "acme",
        "--subtree",
        "--resource",
        "requests",
    ])
    .await
    .ok();
    let table = run(&["webhook", "list"]).await.ok();
    eprintln!("webhook list:\n{}", table.stdout);
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.contains("50%,80%,hard"), "{}", table.stdout);
    assert!(
        table.stdout.contains("acme (subtree) requests"),
        "{}",
        table.stdout
    );
    let shown = run(&["webhook", "get", "ops", "--json"]).await.ok();
    assert!(!shown.stdout.contains("whsec_"), "{}", shown.stdout);
    assert_eq!(shown.json()["thresholds"], serde_json::json!([50, 80]));
    let changed = run(&[
        "webhook",
        "update",
        "ops",
        "--disable",
        "--every-tenant",
        "--json",
    ])
    .await
    .ok()
    .json();
    assert_eq!(
        (changed["enabled"].clone(), changed["tenant"].clone()),
        (Value::Bool(false), Value::Null)
    );
    let log = run(&["webhook", "deliveries", "ops"]).await.ok();
    assert!(log.stdout.starts_with("DELIVERY"), "{}", log.stdout);
    let missing = run(&[
        "webhook",
        "create",
        "x",
        "--url",
        "https://h.example.com/",
        "--secret-env",
        "NOT_SET_ANYWHERE",
        "--hard",
    ])
    .await;
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(
        missing.stderr.contains("NOT_SET_ANYWHERE"),
        "{}",
        missing.stderr
    );
    let refused = run(&[
        "webhook",
        "create",
        "x",
        "--url",
        "http://127.0.0.1:1/",
        "--secret-env",
        "WH_SECRET",
        "--hard",
    ])
    .await;
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(refused.stderr.contains("url"), "{}", refused.stderr);
    run(&["webhook", "delete", "ops"]).await.ok();

    let file = "\
webhooks:
  - id: hooks
    url: https://hooks.example.com/tollgate
    secret_env: WH_SECRET
    thresholds: [80]
    hard: true
    resources: [tokens, requests]
";
    let path = server.file("webhooks.yaml", file);
    let path = path.to_str().unwrap();
    let apply = |flags: &'static [&'static str]| {
        let mut args = vec!["apply", "-f", path];
        args.extend_from_slice(flags);
        async move { server.run_with_env(ADMIN_TOKEN, &env, &args).await }
    };
    let first = apply(&[]).await.ok();
    assert_eq!(
        first.stdout,
        "+ webhook hooks (https://hooks.example.com/tollgate; 80%,hard; resources tokens,requests)\n\
         1 to create, 0 to change, 0 to delete\n"
    );
    assert_eq!(apply(&[]).await.ok().stdout, "no changes\n");
    assert_eq!(
        apply(&["--set-secrets"]).await.ok().stdout,
        "~ webhook hooks: secret set from $WH_SECRET (never shown, so not compared)\n\
         0 to create, 1 to change, 0 to delete\n"
    );
    let moved = server.file(
        "moved.yaml",
        &file.replace("hooks.example.com/tollgate", "hooks.example.com/v2"),
    );
    let moved = server
        .run_with_env(ADMIN_TOKEN, &env, &["apply", "-f", moved.to_str().unwrap()])
        .await
        .ok();
    assert_eq!(
        moved.stdout,
        "~ webhook hooks: url https://hooks.example.com/tollgate -> https://hooks.example.com/v2\n\
         0 to create, 1 to change, 0 to delete\n"
    );
    let empty = server.file("empty.yaml", "tiers: []\n");
    let pruned = server.apply(&empty, &["--prune"]).await.ok();
    assert_eq!(
        pruned.stdout,
        "- webhook hooks\n0 to create, 0 to change, 1 to delete\n"
    );
    let events = run(&["events", "list", "--kind", "webhook.", "--json"])
        .await
        .ok();
    assert!(!events.stdout.contains("whsec_"), "{}", events.stdout);
}

#[tokio::test]
async fn grants_are_applied_once_by_key_listed_revoked_and_shown_in_the_quota() {
    let server = Server::start().await;
    let file = "\
tiers:
  - {name: metered, limits: [{resource: requests, period: month, quota: 100}]}
tenants:
  - id: acme
    tier: metered
    grants:
      - {key: incident-7, resource: requests, period: month, amount: 50,
         until: window_end, reason: 'Incident 7: credit'}
      - {key: launch, resource: requests, period: month, amount: 25,
         expires_at: 2099-01-01T00:00:00Z, reason: launch}
";
    let quotas = server.file("grants.yaml", file);
    let first = server.apply(&quotas, &[]).await.ok();
    eprintln!("first apply:\n{}", first.stdout);
    assert_eq!(
        first.stdout.lines().collect::<Vec<_>>(),
        [
            "+ tier metered (limits: requests/month/calendar quota 100)",
            "+ tenant acme (tier metered)",
            "+ grant acme incident-7: requests/month/calendar +50 until the window's end \
             (\"Incident 7: credit\")",
            "+ grant acme launch: requests/month/calendar +25 until 2099-01-01T00:00:00Z \
             (\"launch\")",
            "4 to create, 0 to change, 0 to delete",
        ]
    );
    // Found again by key: a second apply changes nothing.
    assert_eq!(server.apply(&quotas, &[]).await.ok().stdout, "no changes\n");

    // The command line: create, list, the quota with what grants add, revoke.
    let created = server
        .run(&[
            "grant",
            "create",
            "acme",
            "--resource",
            "requests",
            "--period",
            "month",
            "--amount",
            "5",
            "--expires-at",
            "2099-01-01T00:00:00Z",
            "--reason",
            "by hand",
        ])
        .await
        .ok();
    eprintln!("grant create:\n{}", created.stdout);
    let header = created.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATE"),
        "{}",
        created.stdout
    );
    assert!(created.stdout.contains("+5"), "{}", created.stdout);
    assert!(created.stdout.contains("in_force"), "{}", created.stdout);
    let listed = server
        .run(&["grant", "list", "acme", "--json"])
        .await
        .ok()
        .json();
    let keys: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["key"])
        .collect();
    assert_eq!(
        keys,
        [
            &serde_json::json!("incident-7"),
            &serde_json::json!("launch"),
            &Value::Null
        ]
    );
    assert_eq!(listed["items"][0]["created_by"], "cli-test");
    let quota = server.run(&["tenant", "quota", "acme"]).await.ok();
    assert!(
        quota
            .stdout
            .contains("requests/month/calendar quota 100 (tier), +80 granted: hard limit 180"),
        "{}",
        quota.stdout
    );
    let id = listed["items"][2]["id"].to_string();
    let revoked = server
        .run(&["grant", "revoke", "acme", &id, "--reason", "oops", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (revoked["state"].clone(), revoked["revoke_reason"].clone()),
        (serde_json::json!("revoked"), serde_json::json!("oops"))
    );
    let again = server.run(&["grant", "revoke", "acme", &id]).await;
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stderr.starts_with("error: 409 "), "{}", again.stderr);
    let ended = server
        .run(&["grant", "list", "acme", "--state", "ended", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(ended["items"].as_array().unwrap().len(), 1);
    let no_end = server
        .run(&[
            "grant",
            "create",
            "acme",
            "--resource",
            "requests",
            "--period",
            "month",
            "--amount",
            "1",
            "--reason",
            "x",
        ])
        .await;
    assert_eq!(no_end.code, 2, "{no_end:#?}");

    // A grant cannot change: one declared otherwise is refused before anything is sent.
    let changed = server.file("changed.yaml", &file.replace("amount: 25", "amount: 30"));
    let refused = server.apply(&changed, &[]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains(
            "grant launch of tenant acme differs from the server's grant 2 (amount 25 -> 30): \
             a grant cannot change"
        ),
        "{}",
        refused.stderr
    );
    // With --prune, a keyed grant the file no longer declares is revoked, its record kept.
    let fewer = server.file(
        "fewer.yaml",
        &file.replace(
            "      - {key: launch, resource: requests, period: month, amount: 25,\n\
             \x20        expires_at: 2099-01-01T00:00:00Z, reason: launch}\n",
            "",
        ),
    );
    assert_eq!(server.apply(&fewer, &[]).await.ok().stdout, "no changes\n");
    let prune = server.apply(&fewer, &["--prune"]).await.ok();
    assert_eq!(
        prune.stdout,
        "- grant acme launch (revoked now)\n0 to create, 0 to change, 1 to delete\n"
    );
    let launch = server
        .run(&["grant", "get", "acme", "2", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (launch["state"].clone(), launch["revoked_by"].clone()),
        (serde_json::json!("revoked"), serde_json::json!("cli-test"))
    );
    assert_eq!(
        server.apply(&fewer, &["--prune"]).await.ok().stdout,
        "no changes\n"
    );
}

#[tokio::test]
async fn usage_export_streams_to_stdout_and_whole_files_only() {
    let server = Server::start().await;
    // A month of daily windows of 300 tenants, ended long ago, as the flusher writes them.
    server
        ._postgres
        .psql(
            "INSERT INTO usage_history (tenant_id, resource, series, window_start, window_end, used) \
             SELECT format('t-%s', lpad(t::text, 3, '0')), 'requests', 'day', \
                    timestamptz '2026-01-01 00:00:00+00' + d * interval '1 day', \
                    timestamptz '2026-01-01 00:00:00+00' + (d + 1) * interval '1 day', t + d \
             FROM generate_series(0, 299) t, generate_series(0, 30) d",
        )
        .unwrap();
    let january = [
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-02-01T00:00:00Z",
    ];
    let expected: u64 = (0..300u64).flat_map(|t| (0..31).map(move |d| t + d)).sum();

    // To stdout, as CSV.
    let mut args = vec!["usage", "export", "--format", "csv"];
    args.extend(january);
    let csv = server.run(&args).await.ok();
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let mut total = 0;
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        assert_eq!(&record[7], "true", "{record:?}");
        total += record[5].parse::<u64>().unwrap();
        rows += 1;
    }
    assert_eq!((rows, total), (300 * 31, expected));

    // To a file, as CloudEvents of one tenant and its subtree (it has none).
    let file = server.dir.path().join("january.json");
    let path = file.to_str().unwrap();
    let mut args = vec!["usage", "export", "--format", "cloudevents", "-o", path];
    args.extend(january);
    args.extend(["--tenant", "t-007", "--subtree"]);
    let run = server.run(&args).await.ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let events: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(events.len(), 31);
    assert!(events
        .iter()
        .all(|e| e["subject"] == "t-007" && e["type"] == "tollgate.usage"));
    assert!(!server.dir.path().join("january.json.part").exists());

    // A refusal prints the problem and leaves no file.
    let refused_file = server.dir.path().join("refused.csv");
    let path = refused_file.to_str().unwrap();
    let run = server
        .run(&[
            "usage",
            "export",
            "--format",
            "csv",
            "-o",
            path,
            "--from",
            "2026-02-01T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("422") && run.stderr.contains("to: must be after from"),
        "{run:#?}"
    );
    assert!(!refused_file.exists());
    assert!(!server.dir.path().join("refused.csv.part").exists());
}
