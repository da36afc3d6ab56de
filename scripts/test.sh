#!/usr/bin/env bash
# Quick start, command 2: install what is needed and run the whole test suite
# (unit tests, config tests, end-to-end tests of the real binary on loopback, then every fuzz
# target for FUZZ_SECONDS, default 30; FUZZ_SECONDS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
# npm packages for the tests: tests/interop (Node crypto, the standardwebhooks library) and
# tests/clients (pusher-js, laravel-echo, the pusher server library).
for dir in tests/interop tests/clients; do
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
cargo build --locked --all-targets
cargo test --locked --all-targets -- --test-threads=2
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
