#!/usr/bin/env bash
# Fills the placeholders of an Envoy config template and prints the result.
# Usage: render-envoy.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT CONTROL_PLANE_PORT FAILURE_MODE TIMEOUT_MS WASM_PATH
#   TEMPLATE       the template (default envoy/gateway.yaml; also envoy/reference.yaml)
#   FILTER_CONFIG  the filter's JSON config for {{FILTER_CONFIG}} (one line; default:
#                  the control-plane cluster with TIMEOUT_MS and FAILURE_MODE, every
#                  other field at its default)
#   JWKS_PATH      the JWKS file for {{JWKS_PATH}} (default tests/fixtures/jwt/jwks.json)
#   DECISION_TOKEN the control plane's --decision-token, for {{DECISION_TOKEN}} and the
#                  default FILTER_CONFIG (required by templates that name it)
#   STREAM_IDLE_TIMEOUT  Envoy's stream_idle_timeout for {{STREAM_IDLE_TIMEOUT}} (default 60s)
set -euo pipefail
[ $# -eq 7 ] || { sed -n 2,12p "$0" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
template=${TEMPLATE:-$root/envoy/gateway.yaml}
token=${DECISION_TOKEN:-}
token_field=${token:+", \"token\": \"$token\""}
filter=${FILTER_CONFIG:-"{\"control_plane\": {\"cluster\": \"tollgate_control_plane\", \"timeout_ms\": $6$token_field}, \"failure_mode\": \"$5\"}"}
jwks=${JWKS_PATH:-$root/tests/fixtures/jwt/jwks.json}
[ "${filter//$'\n'/}" = "$filter" ] || { echo "FILTER_CONFIG must be one line" >&2; exit 2; }
config=$(<"$template")
config=${config//'{{LISTEN_PORT}}'/"$1"}
config=${config//'{{ADMIN_PORT}}'/"$2"}
config=${config//'{{UPSTREAM_PORT}}'/"$3"}
config=${config//'{{CONTROL_PLANE_PORT}}'/"$4"}
config=${config//'{{WASM_PATH}}'/"$7"}
config=${config//'{{JWKS_PATH}}'/"$jwks"}
config=${config//'{{FILTER_CONFIG}}'/"$filter"}
config=${config//'{{STREAM_IDLE_TIMEOUT}}'/"${STREAM_IDLE_TIMEOUT:-60s}"}
[ -n "$token" ] && config=${config//'{{DECISION_TOKEN}}'/"$token"}
if grep -v '^[[:space:]]*#' <<<"$config" | grep -q '{{'; then
  echo "$template: a placeholder is left unfilled" >&2
  exit 1
fi
printf '%s\n' "$config"
