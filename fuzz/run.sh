#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time; fails on any crash, hang or
# failed property. Works on stable Rust.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 30)
#
# Environment:
#   FUZZ_SANITIZER=none|address   none (default) builds on stable without a sanitizer;
#                                 address builds with AddressSanitizer via RUSTC_BOOTSTRAP=1.
#   FUZZ_TARGETS="names commands" run only these targets (default: all, from `cargo fuzz list`).
#   CARGO_TARGET_DIR              honoured by cargo fuzz.
#
# New inputs found during the run go to a scratch directory, so the committed seed corpora
# under fuzz/corpus/<target>/ stay small. A crashing input is written to
# fuzz/artifacts/<target>/; turn it into a regression test in the crate.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install --locked cargo-fuzz" >&2
  exit 1
fi

fuzz() {
  if [ "$sanitizer" = none ]; then
    cargo fuzz "$1" -s none "${@:2}"
  else
    RUSTC_BOOTSTRAP=1 cargo fuzz "$1" -s "$sanitizer" "${@:2}"
  fi
}

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
echo "=== building fuzz targets (sanitizer: $sanitizer)"
fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=""
status=0
for t in $targets; do
  echo "=== fuzzing $t for ${secs}s"
  mkdir -p "$scratch/$t" "corpus/$t"
  log="$scratch/$t.log"
  if fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -n 60 "$log"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  summary+="$(printf '%-14s %-7s %12s executions in %ss' "$t" "$result" "${runs:-?}" "$secs")"$'\n'
done
echo "=== fuzzing summary"
printf '%s' "$summary"
exit "$status"
