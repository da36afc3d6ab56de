#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 30), seeded with the
# written corpus in tests/corpus/<target>/. Installs cargo-fuzz if missing. Exits non-zero on the
# first crash, leak, timeout or out-of-memory; the input that caused it is in
# fuzz/artifacts/<target>/ (replay it: cargo +nightly fuzz run <target> <file>).
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
# Rust code without `unsafe` (the crate forbids it): the sanitizer would only slow the search.
flags=(--sanitizer none --debug-assertions)
(cd fuzz && cargo +nightly fuzz build "${flags[@]}")
mkdir -p fuzz/artifacts
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="fuzz/artifacts/$target.log"
  # New inputs go to fuzz/corpus/ (kept between runs); tests/corpus/ is only read.
  if ! (cd fuzz && cargo +nightly fuzz run "${flags[@]}" "$target" \
    "corpus/$target" "../tests/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1) >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target FAILED (log: $log)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  echo "fuzz: $target: ${runs:-?} runs in ${seconds}s, peak RSS ${rss:-?} MiB, no crash"
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each: no crash"
