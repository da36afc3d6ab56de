#!/usr/bin/env bash
# Installs what building fleetgate needs on a fresh Debian machine (pingora needs cmake and a C
# compiler for libz-ng-sys); with `--test`, also what the test suite runs (Debian's `prometheus`
# package: the observability tests start a real Prometheus and run `promtool check metrics`; and
# `openssl`: the TLS tests make their certificates with it; `redis-server`: a cluster test restarts a
# Redis of its own — the shared one on 127.0.0.1:6379 is never touched; `systemd` and `procps`:
# `systemd-analyze verify` checks the service unit).
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
if [ "${1:-}" = "--test" ]; then
  { command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need+=(prometheus)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  # tests/packaging.rs: `systemd-analyze verify` of the unit (its ExecReload names /bin/kill).
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  [ -x /bin/kill ] || need+=(procps)
fi
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is required (rustup)" >&2; exit 1; }
