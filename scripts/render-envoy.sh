#!/usr/bin/env bash
# Fills the placeholders of envoy/gateway.yaml and prints the result.
# Usage: render-envoy.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT CONTROL_PLANE_PORT FAILURE_MODE TIMEOUT_MS WASM_PATH
set -euo pipefail
[ $# -eq 7 ] || { sed -n 2,3p "$0" >&2; exit 2; }
sed -e "s#{{LISTEN_PORT}}#$1#" -e "s#{{ADMIN_PORT}}#$2#" -e "s#{{UPSTREAM_PORT}}#$3#" \
    -e "s#{{CONTROL_PLANE_PORT}}#$4#" -e "s#{{FAILURE_MODE}}#$5#" -e "s#{{TIMEOUT_MS}}#$6#" \
    -e "s#{{WASM_PATH}}#$7#" "$(dirname "$0")/../envoy/gateway.yaml"
