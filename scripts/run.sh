#!/usr/bin/env bash
# Quick start, command 1: build (release) and run the gateway on the shipped gateway.yaml.
# Extra arguments go to `fleetgate run` (e.g. -c other.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --locked --bin fleetgate
if [ "$#" -eq 0 ]; then set -- -c gateway.yaml; fi
# Secrets come from the same .env Laravel uses (WHATSAPP_HMAC_SECRET, ...), if one is here.
if [ -f .env ]; then set -a; . ./.env; set +a; fi
if [ -z "${WHATSAPP_HMAC_SECRET:-}" ]; then
  WHATSAPP_HMAC_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export WHATSAPP_HMAC_SECRET
  echo "WHATSAPP_HMAC_SECRET is not set: using a generated development secret for this run." >&2
  echo "Set it in .env (the value from Laravel's .env) so Node's webhooks verify." >&2
fi
# Hub credentials: Laravel's REVERB_APP_*; development values when unset.
: "${REVERB_APP_ID:=fleetgate-dev}" "${REVERB_APP_KEY:=fleetgate-dev-key}"
if [ -z "${REVERB_APP_SECRET:-}" ]; then
  REVERB_APP_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "REVERB_APP_SECRET is not set: using a generated development secret for this run." >&2
fi
export REVERB_APP_ID REVERB_APP_KEY REVERB_APP_SECRET
exec target/release/fleetgate run "$@"
