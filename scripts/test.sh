#!/usr/bin/env bash
# Quick start, command 2: install what is needed and run the whole test suite
# (unit tests, config tests, and end-to-end tests of the real binary on loopback).
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
