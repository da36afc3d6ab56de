#!/usr/bin/env bash
# Quick start, command 2: install what is needed and run the whole test suite
# (unit tests, config tests, and end-to-end tests of the real binary on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# npm packages for the cross-implementation tests (Node crypto, the standardwebhooks library).
if [ ! -d tests/interop/node_modules ]; then
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
# Real Pusher clients for tests/hub_clients.rs (pusher-js, laravel-echo, the pusher server library).
if [ ! -d tests/clients/node_modules ]; then
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build --locked --all-targets
cargo test --locked --all-targets -- --test-threads=2
