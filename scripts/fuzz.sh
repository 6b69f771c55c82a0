#!/usr/bin/env bash
# Bounded fuzzing of the parsers (the targets in fuzz/fuzz_targets/): every target runs
# for SECONDS_PER_TARGET seconds (default 20), then one line per target says how many
# inputs it ran. Exits non-zero when any target crashed, panicked or hung; the input
# that did it is left in fuzz/artifacts/TARGET/ (replay it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`).
#
#   scripts/fuzz.sh            # ~20 s per target, what scripts/test.sh runs
#   scripts/fuzz.sh 600        # longer, by hand
#
# FUZZ_TARGETS="identity response_cost" runs only those. FUZZ_SANITIZER=address builds
# with AddressSanitizer (it works here, at about a quarter of the executions per second;
# the code under test has no `unsafe`, and panics and integer overflows are caught
# either way, since cargo-fuzz builds with debug assertions).
#
# Installs what it needs only when missing: a nightly toolchain (cargo-fuzz needs it;
# everything else keeps the pinned stable one of rust-toolchain.toml) and cargo-fuzz.
# New inputs the fuzzer finds go to fuzz/corpus/TARGET/ (not checked in) and are
# replayed by the next run; fuzz/seeds/TARGET/ holds checked-in seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
sanitizer=${FUZZ_SANITIZER:-none}
say() { printf '==> %s\n' "$*"; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (for cargo-fuzz only)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (about a minute and a half, once)"
  cargo install --quiet --locked cargo-fuzz
fi

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
say "building the fuzz targets (sanitizer: $sanitizer)"
if [ -z "${FUZZ_TARGETS:-}" ]; then
  cargo +nightly fuzz build -s "$sanitizer" </dev/null
else
  for target in $targets; do cargo +nightly fuzz build -s "$sanitizer" "$target" </dev/null; done
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for target in $targets; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "fuzz/seeds/$target" ] && dirs+=("fuzz/seeds/$target")
  say "fuzzing $target for ${seconds}s"
  log=$logs/$target.log
  status=ok
  # -timeout: one input running longer than 10 s is a hang, reported like a crash.
  if ! cargo +nightly fuzz run -s "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 </dev/null >"$log" 2>&1; then
    status=FAILED
    failed+=("$target")
    # What went wrong: the panic or sanitizer report and the input it left behind.
    grep -E -A12 "panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|==ERROR" "$log" | head -40 || true
    grep -E "Test unit written to|failed to build" "$log" || tail -20 "$log"
  fi
  runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -1)
  summary+=("$(printf 'fuzz: %-16s %10s executions in %ss  %s' "$target" "${runs:-?}" "$seconds" "$status")")
done

printf '\n'
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: failed: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}"
  exit 1
fi
