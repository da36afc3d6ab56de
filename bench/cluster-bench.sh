#!/usr/bin/env bash
# cluster-bench.sh — hub fan-out across two clustered nodes next to one node alone.
#
# Runs examples/hub_load.rs `fanout` twice against fleetgate (`threads: 1` per node, servers on
# SERVER_CPUS, the load client on LOAD_CPUS):
#   single   one node, no cluster: SUBS subscribers, events published to it (the baseline);
#   cluster  two nodes sharing Redis (127.0.0.1:6379, key prefix fgbench-<pid>, deleted after):
#            subscribers split across both, every event published through node A, so half the
#            deliveries cross nodes through Redis.
# Prints deliveries/s and p50/p99 publish->deliver latency side by side. Loopback only, bounded in
# time, everything it starts is stopped on exit. Results: bench/out/<stamp>-cluster/.
#
# Usage:   bench/cluster-bench.sh                 # defaults (~1 min)
# Knobs:   SUBS=4000 DURATION=10 WARMUP=2 PAYLOAD=100 PORT=18097 REDIS=redis://127.0.0.1:6379
#          SERVER_CPUS=0 LOAD_CPUS=1 BUILD=auto|1|0 FLEETGATE_BIN LOAD_BIN
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SUBS=${SUBS:-4000} DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} PAYLOAD=${PAYLOAD:-100}
PORT=${PORT:-18097} REDIS=${REDIS:-redis://127.0.0.1:6379} BUILD=${BUILD:-auto}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
FLEETGATE_BIN=${FLEETGATE_BIN:-$TARGET_DIR/release/fleetgate}
LOAD_BIN=${LOAD_BIN:-$TARGET_DIR/release/examples/hub_load}
PREFIX=fgbench-$$
SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
OUT=$HERE/out/$(date +%Y%m%d-%H%M%S)-cluster
mkdir -p "$OUT"
die() { echo "cluster-bench: $*" >&2; exit 1; }
for tool in taskset python3 redis-cli; do command -v "$tool" >/dev/null || die "missing $tool"; done
if [[ $BUILD == 1 || ($BUILD == auto && (! -x $FLEETGATE_BIN || ! -x $LOAD_BIN)) ]]; then
  (cd "$REPO" && cargo build --release && cargo build --release --example hub_load) || die "build failed"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  redis-cli -u "$REDIS" --scan --pattern "$PREFIX:*" | xargs -r redis-cli -u "$REDIS" del >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_node() { # name port cluster(0|1)
  local cfg=$OUT/$1.yaml i
  {
    echo "threads: 1"
    echo "shutdown: { drain_delay: 0s, grace_period: 1s }"
    echo "listeners: { hub: { listen: 127.0.0.1:$2 } }"
    echo "hub:"
    echo "  listener: hub"
    echo "  apps: [{ id: bench, key: bench-key, secret: \"\${HUB_BENCH_SECRET}\", max_connections: 100000 }]"
    if (($3)); then echo "cluster: { redis: \"$REDIS\", prefix: $PREFIX }"; fi
  } >"$cfg"
  HUB_BENCH_SECRET=$SECRET setsid taskset -c "$SERVER_CPUS" env --default-signal=INT \
    "$FLEETGATE_BIN" run -c "$cfg" >"$OUT/$1.log" 2>&1 &
  PIDS+=("$!")
  for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.1; done
  die "$1 did not open port $2 (see $OUT/$1.log)"
}

run() { # case addrs
  HUB_SECRET=$SECRET timeout -k 5 $((WARMUP + DURATION + 120)) taskset -c "$LOAD_CPUS" "$LOAD_BIN" fanout \
    --addr "$2" --publish-addr "127.0.0.1:$PORT" --key bench-key --app-id bench --secret-env HUB_SECRET \
    --subs "$SUBS" --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" >"$OUT/$1.txt" 2>&1 ||
    echo "  $1: hub_load failed (see $OUT/$1.txt)"
}

start_node single "$PORT" 0
run single "127.0.0.1:$PORT"
cleanup; PIDS=()
start_node node-a "$PORT" 1
start_node node-b "$((PORT + 1))" 1
run cluster "127.0.0.1:$PORT,127.0.0.1:$((PORT + 1))"

{
  echo "date: $(date -Is); fleetgate $(git -C "$REPO" rev-parse --short HEAD); $SUBS subscribers, $PAYLOAD-byte events, ${DURATION}s"
  echo "servers on cpu $SERVER_CPUS (both nodes in the cluster case), hub_load on cpu $LOAD_CPUS, Redis unpinned"
  printf '%-34s %14s %10s %10s %12s\n' case deliveries/s "p50 ms" "p99 ms" received
  for c in single cluster; do
    python3 - "$OUT/$c.txt" "$c" <<'PY'
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith("RESULT ")), None)
name = {"single": "one node (no cluster)", "cluster": "two nodes via Redis (half remote)"}[sys.argv[2]]
if line is None:
    print(f"{name:<34} {'no result':>14}")
else:
    r = json.loads(line[7:])
    lat = r["latency_us"]
    got = f"{r['deliveries_received']}/{r['deliveries_expected']}"
    print(f"{name:<34} {r['deliveries_per_sec']:>14,.0f} {lat['p50']/1e3:>10.1f} {lat['p99']/1e3:>10.1f} {got:>12}")
PY
  done
} | tee "$OUT/summary.md"
