//! `--config FILE`: flags can come from a file of `KEY=VALUE` lines, and the environment
//! wins over it. Proven with the real binary migrating a real PostgreSQL.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn migrate(config: &std::path::Path, env_url: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .args(["migrate", "--config"])
        .arg(config)
        .env_remove("DATABASE_URL")
        .env_remove("TOLLGATE_CONFIG");
    if let Some(url) = env_url {
        command.env("DATABASE_URL", url);
    }
    command.output().unwrap()
}

#[test]
fn settings_come_from_the_config_file_unless_the_environment_gives_them() {
    let url = tollgate_e2e::shared::postgres_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.env");
    std::fs::write(
        &config,
        format!("# as tollgate.env.example\nDATABASE_URL={url}\n"),
    )
    .unwrap();

    let from_file = migrate(&config, None);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );

    let overridden = migrate(&config, Some("postgres://nobody@127.0.0.1:1/none"));
    assert!(
        !overridden.status.success(),
        "the environment's URL must win"
    );

    let missing = migrate(&dir.path().join("absent.env"), None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--config"));
}
