#!/usr/bin/env bash
# Fills the {{NAME}} placeholders of an Envoy config template and prints the result.
#
# Usage: render-envoy.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT CONTROL_PLANE_PORT FAILURE_MODE TIMEOUT_MS WASM_PATH
#   LISTEN_PORT         the gateway's listener
#   ADMIN_PORT          Envoy's admin interface
#   UPSTREAM_PORT       the service behind the gateway
#   CONTROL_PLANE_PORT  the control plane's decision listener (`tollgate serve
#                       --decision-listen`), not its admin listener (`--listen`): that
#                       one serves no /v1, so every check would fail
#   FAILURE_MODE        open | closed: what the filter does without a decision
#   TIMEOUT_MS          the filter's decision deadline in milliseconds, 1 to 60000
#   WASM_PATH           the built filter (target/wasm32-wasip1/wasm/tollgate_filter.wasm)
# Settings from the environment:
#   TEMPLATE        the template (default envoy/gateway.yaml; also envoy/reference.yaml)
#   DECISION_TOKEN  the control plane's --decision-token, for {{DECISION_TOKEN}}; required
#                   by templates and filter configs that name it
#   FILTER_CONFIG   the filter's JSON config on one line, for gateway.yaml's
#                   {{FILTER_CONFIG}}. By default the control-plane cluster with
#                   TIMEOUT_MS, FAILURE_MODE and DECISION_TOKEN (when set), every other
#                   field at its default. One given here replaces that, so it takes them
#                   where they go: "timeout_ms": {{TIMEOUT_MS}}, "failure_mode":
#                   "{{FAILURE_MODE}}", "token": "{{DECISION_TOKEN}}"
#   JWKS_PATH       the JWKS file for reference.yaml's {{JWKS_PATH}}: the keys that sign
#                   your tokens (required there; tests/fixtures/jwt/jwks.json holds the
#                   test keys, whose private half is in the repository)
#   STREAM_IDLE_TIMEOUT  Envoy's stream_idle_timeout, e.g. 60s (the default)
# Every argument, and every setting that is set, must land in the config: one the
# template (or FILTER_CONFIG) has no placeholder for is refused, and so is a
# placeholder left unfilled; both name the placeholder (exit 1). Wrong arguments print
# this text (exit 2).
set -euo pipefail
me=render-envoy.sh
root=$(cd "$(dirname "$0")/.." && pwd)

# This file's opening comment, or its arguments' part.
usage() { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; }
arguments() { usage | sed -n '/^Usage:/,/^Settings/p' | sed '$d'; }
# A wrong call: what is wrong, then how to call.
bad_call() {
  {
    echo "$me: $*"
    arguments
    echo "Settings: TEMPLATE, DECISION_TOKEN, FILTER_CONFIG, JWKS_PATH, STREAM_IDLE_TIMEOUT ($me --help tells more)"
  } >&2
  exit 2
}

case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -eq 7 ] || bad_call "expected 7 arguments, got $#"

# A whole number from 1 to MAX, without leading zeros.
whole() { # VALUE MAX
  [[ $1 =~ ^[1-9][0-9]{0,4}$ ]] && ((10#$1 <= $2))
}
port() { # NAME VALUE
  whole "$2" 65535 || bad_call "$1 must be a port number (1 to 65535), not '$2'"
}
port LISTEN_PORT "$1"
port ADMIN_PORT "$2"
port UPSTREAM_PORT "$3"
port CONTROL_PLANE_PORT "$4"
[[ $5 == open || $5 == closed ]] || bad_call "FAILURE_MODE must be open or closed, not '$5'"
whole "$6" 60000 ||
  bad_call "TIMEOUT_MS must be a whole number of milliseconds from 1 to 60000, not '$6'"
# Paths go into double-quoted YAML strings.
path_value() { # NAME VALUE
  [[ -n $2 && $2 != *[\"\\]* && $2 != *$'\n'* ]] ||
    bad_call "$1 must be a path without quotes, backslashes or line breaks, not '$2'"
}
path_value WASM_PATH "$7"

template=${TEMPLATE:-$root/envoy/gateway.yaml}
[ -f "$template" ] || bad_call "TEMPLATE=$template: no such file"
# How messages name it.
shown=${TEMPLATE:-envoy/gateway.yaml}
if [ -n "${DECISION_TOKEN+set}" ]; then
  # What the filter accepts as control_plane.token, and fits in a JSON string as it is.
  [[ ${#DECISION_TOKEN} -le 4096 && $DECISION_TOKEN =~ ^[[:graph:]]+$ && $DECISION_TOKEN != *[\"\\]* ]] ||
    bad_call "DECISION_TOKEN must be 1 to 4096 printable characters without spaces, quotes or backslashes"
fi
[ -z "${JWKS_PATH+set}" ] || path_value JWKS_PATH "$JWKS_PATH"
if [ -n "${STREAM_IDLE_TIMEOUT+set}" ]; then
  [[ $STREAM_IDLE_TIMEOUT =~ ^[0-9]+(\.[0-9]+)?s$ ]] ||
    bad_call "STREAM_IDLE_TIMEOUT must be a duration in seconds like 60s or 0.5s, not '$STREAM_IDLE_TIMEOUT'"
fi
if [ -n "${FILTER_CONFIG+set}" ]; then
  [[ -n $FILTER_CONFIG && $FILTER_CONFIG != *$'\n'* ]] || bad_call "FILTER_CONFIG must be one line of JSON"
fi

# The placeholders this script fills: name, value, and how the caller gave it ("" for a
# default nobody asked for). Whatever was given must be taken by the template.
names=() values=() givens=()
fill() { names+=("$1") values+=("$2") givens+=("$3"); }
fill LISTEN_PORT "$1" "LISTEN_PORT (argument 1)"
fill ADMIN_PORT "$2" "ADMIN_PORT (argument 2)"
fill UPSTREAM_PORT "$3" "UPSTREAM_PORT (argument 3)"
fill CONTROL_PLANE_PORT "$4" "CONTROL_PLANE_PORT (argument 4)"
fill FAILURE_MODE "$5" "FAILURE_MODE (argument 5, $5)"
fill TIMEOUT_MS "$6" "TIMEOUT_MS (argument 6, $6)"
fill WASM_PATH "$7" "WASM_PATH (argument 7)"
[ -z "${JWKS_PATH+set}" ] || fill JWKS_PATH "$JWKS_PATH" JWKS_PATH
fill STREAM_IDLE_TIMEOUT "${STREAM_IDLE_TIMEOUT:-60s}" "${STREAM_IDLE_TIMEOUT:+STREAM_IDLE_TIMEOUT}"
if [ -n "${DECISION_TOKEN+set}" ]; then
  fill DECISION_TOKEN "$DECISION_TOKEN" DECISION_TOKEN
  token_field=', "token": "{{DECISION_TOKEN}}"'
fi

config=$(<"$template")
# The filter config goes in first: it may hold placeholders of its own.
default_filter="{\"control_plane\": {\"cluster\": \"tollgate_control_plane\", \"timeout_ms\": {{TIMEOUT_MS}}${token_field:-}}, \"failure_mode\": \"{{FAILURE_MODE}}\"}"
config=${config//'{{FILTER_CONFIG}}'/"${FILTER_CONFIG:-$default_filter}"}
lacks="$shown has no"
if [ -n "${FILTER_CONFIG+set}" ]; then
  if ! grep -v '^[[:space:]]*#' "$template" | grep -qF '{{FILTER_CONFIG}}'; then
    echo "$me: FILTER_CONFIG would be ignored: $shown has no {{FILTER_CONFIG}} (edit the filter config in a copy of it instead)" >&2
    exit 1
  fi
  lacks="neither $shown nor FILTER_CONFIG has"
fi
# Where a value goes in a filter config of one's own.
declare -A json_field=(
  [FAILURE_MODE]='"failure_mode": "{{FAILURE_MODE}}"'
  [TIMEOUT_MS]='"timeout_ms": {{TIMEOUT_MS}} in "control_plane"'
  [DECISION_TOKEN]='"token": "{{DECISION_TOKEN}}" in "control_plane"'
)

# Only what is not a comment counts as taken.
code=$(grep -v '^[[:space:]]*#' <<<"$config" || true)
refused=0
for i in "${!names[@]}"; do
  if [ -n "${givens[i]}" ] && [[ $code != *"{{${names[i]}}}"* ]]; then
    hint=
    if [ -n "${FILTER_CONFIG+set}" ] && [ -n "${json_field[${names[i]}]:-}" ]; then
      hint=" (write ${json_field[${names[i]}]} into FILTER_CONFIG)"
    fi
    echo "$me: ${givens[i]} would be ignored: $lacks {{${names[i]}}}$hint" >&2
    refused=1
  fi
done
[ "$refused" = 0 ] || exit 1

for i in "${!names[@]}"; do
  config=${config//"{{${names[i]}}}"/"${values[i]}"}
done

unfilled=$(grep -v '^[[:space:]]*#' <<<"$config" | grep -o '{{[A-Za-z0-9_]*}}' | sort -u || true)
if [ -n "$unfilled" ]; then
  while read -r placeholder; do
    case $placeholder in
      '{{DECISION_TOKEN}}')
        echo "$me: {{DECISION_TOKEN}} is left unfilled: set DECISION_TOKEN=… (the control plane's --decision-token)" >&2 ;;
      '{{JWKS_PATH}}')
        echo "$me: {{JWKS_PATH}} is left unfilled: set JWKS_PATH=… (the JWKS of the keys that sign your tokens)" >&2 ;;
      *)
        echo "$me: $placeholder is left unfilled: $me fills no such placeholder (a typo in $shown${FILTER_CONFIG+ or FILTER_CONFIG}?)" >&2 ;;
    esac
  done <<<"$unfilled"
  exit 1
fi
printf '%s\n' "$config"
