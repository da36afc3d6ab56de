#!/usr/bin/env bash
# Quick start, command 2: install what is needed and run the whole test suite
# (unit tests, config tests, and end-to-end tests of the real binary on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --locked --all-targets
cargo test --locked --all-targets -- --test-threads=2
