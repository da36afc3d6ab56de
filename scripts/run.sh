#!/usr/bin/env bash
# Quick start, command 1: build (release) and run the gateway on the shipped gateway.yaml.
#   bash scripts/run.sh --dev [ARGS]   secrets that are unset get generated development values
#   bash scripts/run.sh [ARGS]         every secret must be set (environment or ./.env)
# Extra arguments go to `fleetgate run` (default: -c gateway.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
if [ "${1:-}" = "--dev" ]; then dev=1; shift; fi
# Secrets come from the same .env Laravel uses (WHATSAPP_HMAC_SECRET, REVERB_APP_*), if one is here.
if [ -f .env ]; then set -a; . ./.env; set +a; fi
generated() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
missing=()
for name in WHATSAPP_HMAC_SECRET REVERB_APP_ID REVERB_APP_KEY REVERB_APP_SECRET; do
  [ -n "${!name:-}" ] && continue
  if [ "$dev" = 0 ]; then missing+=("$name"); continue; fi
  case "$name" in
    REVERB_APP_ID) value=fleetgate-dev ;;
    REVERB_APP_KEY) value=fleetgate-dev-key ;;
    *) value=$(generated) ;;
  esac
  printf -v "$name" '%s' "$value"
  export "${name?}"
  echo "$name is not set: using a generated development value for this run (--dev)." >&2
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "not set: ${missing[*]}" >&2
  echo "Set them (the values from Laravel's .env) in the environment or in ./.env," >&2
  echo "or run 'bash scripts/run.sh --dev' to generate development values for this run." >&2
  exit 1
fi
bash scripts/deps.sh
cargo build --release --locked --bin fleetgate
if [ "$#" -eq 0 ]; then set -- -c gateway.yaml; fi
exec target/release/fleetgate run "$@"
