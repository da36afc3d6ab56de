#!/usr/bin/env bash
# Quick start, command 1: build (release) and run the gateway on the shipped gateway.yaml.
# Extra arguments go to `fleetgate run` (e.g. -c other.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --locked --bin fleetgate
if [ "$#" -eq 0 ]; then set -- -c gateway.yaml; fi
exec target/release/fleetgate run "$@"
