#!/usr/bin/env bash
# Development CA + a `localhost` certificate signed by it, in the layout fleetgate's TLS listeners
# read. For local testing only; nothing written here is ever committed (see .gitignore).
#
#   certs/dev-ca/ca.crt, ca.key         the development CA (trust ca.crt in curl/browsers)
#   certs/dev/localhost.crt, .key       the pair to serve: `tls: { dir: certs/dev }`
#
# Running it again keeps the CA and issues a fresh localhost certificate (new serial), written
# beside the old one and renamed over it, so a running gateway picks it up without a restart.
set -euo pipefail
cd "$(dirname "$0")"
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }
umask 077
mkdir -p dev-ca dev
if [ ! -s dev-ca/ca.key ] || [ ! -s dev-ca/ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=fleetgate dev CA" -keyout dev-ca/ca.key -out dev-ca/ca.crt 2>/dev/null
  echo "wrote certs/dev-ca/ca.crt, certs/dev-ca/ca.key (new CA: trust ca.crt again)"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' 'basicConstraints=critical,CA:FALSE' \
  'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' > "$tmp/ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$tmp/localhost.key" -out "$tmp/localhost.csr" 2>/dev/null
openssl x509 -req -in "$tmp/localhost.csr" -CA dev-ca/ca.crt -CAkey dev-ca/ca.key \
  -set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$tmp/ext" -out "$tmp/localhost.crt" 2>/dev/null
# Same filesystem as the target, then rename: the gateway never reads a half-written file.
cp "$tmp/localhost.key" dev/.localhost.key.new
cp "$tmp/localhost.crt" dev/.localhost.crt.new
mv dev/.localhost.key.new dev/localhost.key
mv dev/.localhost.crt.new dev/localhost.crt
chmod 644 dev-ca/ca.crt dev/localhost.crt
echo "wrote certs/dev/localhost.crt, certs/dev/localhost.key ($(openssl x509 -in dev/localhost.crt -noout -serial))"
