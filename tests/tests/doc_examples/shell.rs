//! Running a documented shell example as it is written: with bash, in a directory laid
//! out like the repository (`scripts/`, `envoy/`, `tests/` and `target/` are links to
//! the real ones), so that its relative paths, `$PWD/target/…` and its `> envoy.yaml`
//! work and what it writes stays out of the work tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tollgate_e2e::process::{repo_root, target_dir};

/// The one build an example may ask for: the filter the harness runs, which the test
/// checked is there (`tollgate_e2e::envoy::wasm_path`).
pub const WASM_BUILD: &str = "build -p tollgate-filter --profile wasm --target wasm32-wasip1";

/// The render-envoy.sh settings: none leaks in from the environment the test runs in.
const SETTINGS: [&str; 5] = [
    "TEMPLATE",
    "DECISION_TOKEN",
    "FILTER_CONFIG",
    "JWKS_PATH",
    "STREAM_IDLE_TIMEOUT",
];

/// A directory laid out like the repository.
#[derive(Debug)]
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    /// A fresh one.
    pub fn new() -> Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-doc-example-")
            .tempdir()?;
        for name in ["scripts", "envoy", "tests"] {
            std::os::unix::fs::symlink(repo_root().join(name), dir.path().join(name))?;
        }
        std::os::unix::fs::symlink(target_dir(), dir.path().join("target"))?;
        Ok(Sandbox { dir })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file the example wrote, by the name it gave it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `script` with `bash -euo pipefail` in the sandbox with `env` set; `cargo`
    /// stands in for [`WASM_BUILD`] (the test did that build) and refuses anything
    /// else. Fails with what the script printed unless it succeeds.
    pub fn run(&self, script: &str, env: &[(&str, &str)]) -> Result<()> {
        let stand_in = format!(
            "cargo() {{\n  [ \"$*\" = '{WASM_BUILD}' ] || \
             {{ echo \"the example runs cargo $*: the test has no stand-in for it\" >&2; exit 97; }}\n}}\n"
        );
        let mut command = Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &format!("{stand_in}{script}")])
            .current_dir(self.path());
        for name in SETTINGS {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let output = command.output().context("running bash")?;
        if !output.status.success() {
            bail!(
                "the example failed ({}):\n{script}\n--- stderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// One `scripts/render-envoy.sh` call of an example, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderCall {
    /// Arguments 1 to 7: the listen, admin, upstream and control-plane ports, the
    /// failure mode, the deadline and the `.wasm`.
    pub args: Vec<String>,
    /// The file its output is redirected to.
    pub output: String,
}

impl RenderCall {
    /// The port argument `index` (0: listen, 1: admin, 2: upstream, 3: control plane).
    pub fn port(&self, index: usize) -> &str {
        &self.args[index]
    }
}

/// Every render-envoy.sh call of a shell example (continued lines joined), in order.
/// Fails on one it cannot read: fewer than 7 words after the script, or no `> FILE`.
pub fn render_calls(script: &str) -> Result<Vec<RenderCall>> {
    let joined = script.replace("\\\n", " ");
    let mut calls = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with('#') || !line.contains("render-envoy.sh") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.ends_with("render-envoy.sh"))
            .with_context(|| format!("render-envoy.sh is not a word of: {line}"))?;
        let args: Vec<String> = words[at + 1..]
            .iter()
            .take_while(|w| !w.starts_with('>'))
            .map(|w| w.to_string())
            .collect();
        if args.len() != 7 {
            bail!("render-envoy.sh takes 7 arguments, the example gives {args:?}: {line}");
        }
        let output = match words.iter().position(|w| w.starts_with('>')) {
            Some(i) if words[i] == ">" => words.get(i + 1).map(|w| w.to_string()),
            Some(i) => Some(words[i][1..].to_string()),
            None => None,
        }
        .with_context(|| format!("the example's call writes to no `> FILE`: {line}"))?;
        calls.push(RenderCall { args, output });
    }
    Ok(calls)
}

/// `text` with every whole number that is a key of `numbers` replaced by its value
/// (a port written `8082` is replaced, `18082` or `80820` are not).
pub fn replace_numbers(text: &str, numbers: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        out.push_str(numbers.get(digits.as_str()).unwrap_or(digits));
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// The port of the address that follows `flag` in a shell example (`--listen
/// 127.0.0.1:8081` → `8081`).
pub fn flag_port(script: &str, flag: &str) -> Result<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    let address = words
        .windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1])
        .with_context(|| format!("the example has no `{flag} ADDRESS`"))?;
    let port = address
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| format!("`{flag} {address}` names no port"))?;
    Ok(port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_numbers_are_replaced() {
        let numbers = BTreeMap::from([("8082".to_string(), "17001".to_string())]);
        assert_eq!(
            replace_numbers("a 8082 18082 80820 :8082\n8082", &numbers),
            "a 17001 18082 80820 :17001\n17001"
        );
    }

    #[test]
    fn render_calls_are_read_across_continued_lines() {
        let script = "# scripts/render-envoy.sh in a comment\n\
                      A=1 B=\"$x\" \\\n  scripts/render-envoy.sh 1 2 3 4 open 200 \"$w\" > out.yaml\n";
        let calls = render_calls(script).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].args[3], "4");
        assert_eq!(calls[0].output, "out.yaml");
    }
}
