#!/usr/bin/env bash
# Development CA + a localhost certificate signed by it. For local testing only.
set -euo pipefail
cd "$(dirname "$0")"
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=fleetgate dev CA" \
  -keyout dev-ca.key -out dev-ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout localhost.key -out localhost.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > localhost.ext
openssl x509 -req -in localhost.csr -CA dev-ca.pem -CAkey dev-ca.key -CAcreateserial -days 30 \
  -extfile localhost.ext -out localhost.pem 2>/dev/null
rm -f localhost.csr localhost.ext dev-ca.srl
echo "wrote certs/dev-ca.pem, certs/localhost.pem, certs/localhost.key"
