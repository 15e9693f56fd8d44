#!/usr/bin/env bash
# Fuzzes each target for a bounded time, starting from the committed corpus
# (fuzz/corpus/<target>), and prints one summary line per target.
# Usage: bash fuzz/run.sh [seconds per target]   (default 30)
#
# Runs on the stable toolchain: cargo-fuzz without a sanitizer needs only
# stable flags (coverage instrumentation via -Cpasses=sancov-module). New
# inputs go to a temporary directory, so the committed corpus only changes
# by hand; a crash is saved under fuzz/artifacts/<target>/ — commit it, and
# tests/it/fuzz_corpus.rs replays it on every test run from then on.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-${SEALGATE_FUZZ_SECS:-30}}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2 --quiet
target_dir="${CARGO_TARGET_DIR:-$PWD/target}-fuzz"
unset CARGO_TARGET_DIR
targets=(object upload_id request config registry)
cargo fuzz build -s none -O --target-dir "$target_dir" >/dev/null 2>&1 \
  || cargo fuzz build -s none -O --target-dir "$target_dir"
failed=0
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  log="$(mktemp)"
  if cargo fuzz run -s none -O --target-dir "$target_dir" "$t" "$work" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    status="0 crashes"
  else
    status="CRASH (reproducer in fuzz/artifacts/$t/)"
    failed=1
    tail -n 30 "$log"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  seeds="$(ls "corpus/$t" | wc -l)"
  found="$(ls "$work" | wc -l)"
  echo "reliability: fuzz $t: ${runs:-0} runs in ${secs} s, $status, ${seeds} seeds, ${found} new inputs"
  rm -rf "$work" "$log"
done
exit "$failed"
