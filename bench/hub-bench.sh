#!/usr/bin/env bash
# hub-bench.sh — fleetgate's hub (Pusher protocol 7) under load: fan-out and idle memory.
#
# Two parts, each against a freshly started gateway (`threads: 1`, pinned to SERVER_CPUS, one
# listener for the hub, app with max_connections 100000 and max_message_size 10KiB), driven by the
# Rust load client examples/hub_load.rs (one process, pinned to LOAD_CPUS). The fan-out part runs
# against every server of TARGETS in turn, in one run, and prints each one's ratio to the
# pre-framed Node stand-in and to the ceiling:
#   ceiling        examples/raw_fanout.rs: each event framed once, one blocking send per socket
#                  from one thread, nothing else (what the kernel allows here)
#   ceiling-batch  the same, events that queued up meanwhile leaving in one write per socket
#   node           ../shared/bench/ws/standin-hub.js: a naive Node `ws` hub (ws.send per socket)
#   node-preframe  the same with --preframe: each event framed once, one socket write each
#   fleetgate      the product (THREADS worker threads; FLEETGATE_THREADS=1 by default)
#   fanout  SUBS (10,000) subscribers on one public channel; PAYLOAD (100)-byte events published
#           through the signed HTTP API (POST /apps/bench/events) for WARMUP + DURATION seconds.
#           Prints deliveries/s (total = per server core: one gateway thread), p50/p99
#           publish->deliver latency, events published, deliveries expected vs received, 4100
#           (slow consumer) disconnects, and the CPU each side used in the measured window.
#           Goals (issue 16): >= 2.0x the pre-framed Node stand-in and >= 80 % of the ceiling
#           (the ratios printed); in an open loop at half the maximum rate, p99 < 50 ms.
#   idle    IDLE_CONNS (20,000) connections, each subscribed to its own public channel, held HOLD
#           seconds: the gateway's VmRSS before and after, and per connection (goal <= 16 KiB).
# Everything stays on 127.0.0.1, every step is bounded in time, and every process started here is
# stopped on exit (Ctrl-C too). Results: bench/out/<stamp>-hub/ (summary.md, results.jsonl, raw/,
# run/ with the configs and the gateway logs).
#
# Usage:   bench/hub-bench.sh                                   # both parts, defaults (~1.5 min)
#          PARTS=fanout SUBS=2000 DURATION=5 bench/hub-bench.sh # quick check
#          PARTS=fanout RATE=40 bench/hub-bench.sh              # open loop, 40 events/s
#          WAIT_QUIET=120 RETRY_NOISY=1 bench/hub-bench.sh      # on a shared machine
# Knobs (env):
#   PARTS="fanout idle"
#   TARGETS="ceiling ceiling-batch node node-preframe fleetgate"   fan-out servers (idle: fleetgate)
#   FLEETGATE_THREADS=1   the gateway's `threads:` (with PIN=1 it still runs on SERVER_CPUS)
#   SUBS=10000 PUBLISHERS=2 RATE=0 GATE=1 PAYLOAD=100 WARMUP=2 DURATION=10 DRAIN=5   (fanout)
#       STALLED=0: extra subscribers that stop reading once subscribed (slow consumers; the
#       others' figures show whether they slow anyone down)
#       RATE=0: closed loop, PUBLISHERS lanes; GATE=1: each lane waits until its event reached
#       every subscriber before the next (bounded backlog); GATE=0: waits for the API answer only.
#       RATE=R: open loop at R events/s (latency counted from each event's due time).
#       SPIN=1: the client's subscriber threads busy-poll while publishing, so the gateway's
#       loopback sends never pay for waking a sleeping reader (see bench/README.md)
#   IDLE_CONNS=20000 HOLD=5 SETTLE=30                                                 (idle)
#       SETTLE: seconds after the idle connections close before the gateway's RSS is read again
#   RAMP=500            connections opened concurrently per batch
#   CONNECT_TIMEOUT=180 seconds for a whole connect phase
#   WS_IMPL=raw|tungstenite   subscriber WebSocket code in the client (raw: cheaper per frame)
#   CLIENT_THREADS      subscriber runtime threads (default: CPUs in LOAD_CPUS)
#   HUB_PORT=18095 SERVER_CPUS=0 LOAD_CPUS=1 PIN=1 NOFILE=200000 (ulimit -n for both processes)
#   CAP_CONNS=1         when ulimit -n cannot be raised (no CAP_SYS_RESOURCE: a container),
#                       cap SUBS / IDLE_CONNS at the limit minus 100, loudly; 0: refuse instead
#   BUILD=auto|1|0      auto: cargo build --release (and --example hub_load) when a binary is
#                       missing; 1: always; 0: never. FLEETGATE_BIN, LOAD_BIN to use others.
#   WAIT_OTHER=1800     seconds to wait for another benchmark (*bench.sh, wrk) to end; then abort
#   WAIT_QUIET=0 QUIET_MAX=15 OTHER_MAX=5 RETRY_NOISY=0   as in proxy-bench.sh: wait for a quiet
#                       machine before each part; a part where others used > OTHER_MAX % of the
#                       machine is flagged (and measured again up to RETRY_NOISY times)
#   START_TIMEOUT=15 OUT=bench/out/<stamp>-hub
set -euo pipefail
set +m # no job control: a background job must not lead its own group, or setsid would fork and $! be lost

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib-quiet.sh
source "$HERE/lib-quiet.sh"
PARTS=${PARTS:-"fanout idle"}
TARGETS=${TARGETS:-"ceiling ceiling-batch node node-preframe fleetgate"}
FLEETGATE_THREADS=${FLEETGATE_THREADS:-1}
SUBS=${SUBS:-10000}
PUBLISHERS=${PUBLISHERS:-2}
RATE=${RATE:-0}
GATE=${GATE:-1}
PAYLOAD=${PAYLOAD:-100}
WARMUP=${WARMUP:-2}
DURATION=${DURATION:-10}
DRAIN=${DRAIN:-5}
SPIN=${SPIN:-0}
STALLED=${STALLED:-0}
IDLE_CONNS=${IDLE_CONNS:-20000}
HOLD=${HOLD:-5}
SETTLE=${SETTLE:-30}
RAMP=${RAMP:-500}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-180}
WS_IMPL=${WS_IMPL:-raw}
HUB_PORT=${HUB_PORT:-18095}
PIN=${PIN:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
NOFILE=${NOFILE:-200000}
CAP_CONNS=${CAP_CONNS:-1}
BUILD=${BUILD:-auto}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
FLEETGATE_BIN=${FLEETGATE_BIN:-$TARGET_DIR/release/fleetgate}
LOAD_BIN=${LOAD_BIN:-$TARGET_DIR/release/examples/hub_load}
RAW_BIN=${RAW_BIN:-$TARGET_DIR/release/examples/raw_fanout}
WS_SRC=${WS_SRC:-$REPO/../shared/bench/ws}
WS_DIR=$HERE/.ws
WAIT_OTHER=${WAIT_OTHER:-1800}
WAIT_QUIET=${WAIT_QUIET:-0}
QUIET_MAX=${QUIET_MAX:-15}
OTHER_MAX=${OTHER_MAX:-5}
RETRY_NOISY=${RETRY_NOISY:-0}
START_TIMEOUT=${START_TIMEOUT:-15}

die() { echo "hub-bench: $*" >&2; exit 1; }
for p in $PARTS; do [[ $p == fanout || $p == idle ]] || die "unknown part '$p' (known: fanout idle)"; done
for t in $TARGETS; do
  [[ " ceiling ceiling-batch node node-preframe fleetgate " == *" $t "* ]] || die "unknown target '$t'"
done
for v in STALLED SETTLE FLEETGATE_THREADS SUBS PUBLISHERS GATE PAYLOAD WARMUP DURATION DRAIN SPIN IDLE_CONNS HOLD RAMP CONNECT_TIMEOUT HUB_PORT \
  NOFILE CAP_CONNS WAIT_OTHER WAIT_QUIET QUIET_MAX OTHER_MAX RETRY_NOISY START_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RATE must be a number (events/s), got '$RATE'"
[[ $WS_IMPL == raw || $WS_IMPL == tungstenite ]] || die "WS_IMPL must be raw or tungstenite"
count_cpus() { # "0" -> 1, "0,1" -> 2, "0-3" -> 4
  local n=0 part
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then n=$((n + ${part#*-} - ${part%-*} + 1)); else n=$((n + 1)); fi
  done
  echo "$n"
}
CLIENT_THREADS=${CLIENT_THREADS:-$([[ $PIN == 1 ]] && count_cpus "$LOAD_CPUS" || nproc)}
pin() { if [[ $PIN == 1 ]]; then echo "taskset -c $1"; fi; }

for tool in taskset setsid ss awk timeout jq; do
  command -v "$tool" >/dev/null || die "missing tool: $tool (apt-get install -y util-linux iproute2 gawk coreutils jq)"
done

# ---------------------------------------------------------------- limits (both processes inherit them)
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
PORTS=$((PORT_HI - PORT_LO + 1))
NEED=0
[[ " $PARTS " == *" fanout "* ]] && NEED=$SUBS
[[ " $PARTS " == *" idle "* ]] && ((IDLE_CONNS > NEED)) && NEED=$IDLE_CONNS
((NEED + 1000 < PORTS)) ||
  die "$NEED connections from 127.0.0.1 to one port need more ephemeral ports than $PORT_LO-$PORT_HI ($PORTS) leave"
LIMIT_NOTE=
if ! ulimit -n "$NOFILE" 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  LIMIT_NOTE="ulimit -n could not be raised to $NOFILE (not root, or no CAP_SYS_RESOURCE): the hard limit is $(ulimit -Hn)"
fi
# The gateway needs one descriptor per connection plus a few of its own (listener, epoll, logs).
MAX_CONNS=$(($(ulimit -n) - 100))
for v in SUBS IDLE_CONNS; do
  part=fanout; [[ $v == IDLE_CONNS ]] && part=idle
  [[ " $PARTS " == *" $part "* ]] && ((${!v} > MAX_CONNS)) || continue
  ((CAP_CONNS)) || die "$v=${!v} needs more than ulimit -n $(ulimit -n) allows ($LIMIT_NOTE); CAP_CONNS=1 to cap it"
  LIMIT_NOTE="$LIMIT_NOTE; $v capped from ${!v} to $MAX_CONNS"
  printf -v "$v" '%s' "$MAX_CONNS"
done
if [[ -n $LIMIT_NOTE ]]; then LIMIT_NOTE=${LIMIT_NOTE#; }; echo "WARNING: $LIMIT_NOTE" >&2; fi

# ---------------------------------------------------------------- other benchmarks: wait for them to end
is_ours() { # PID: this script or one of its descendants (subshells share our command line)
  local p=$1 n
  for ((n = 0; n < 64 && p > 1; n++)); do
    [[ $p == "$$" ]] && return 0
    p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2) || return 1
    [[ -n $p ]] || return 1
  done
  return 1
}
other_benchmarks() { # "pid command" of running benchmarks (*bench.sh scripts, wrk) not started by us
  local pid a0 a1
  for pid in $(pgrep -f 'bench\.sh|wrk' || true); do
    is_ours "$pid" && continue
    mapfile -d '' -t argv 2>/dev/null <"/proc/$pid/cmdline" || continue
    a0=$(basename -- "${argv[0]:-x}"); a1=$(basename -- "${argv[1]:-x}")
    if [[ $a0 == wrk || $a0 == *bench.sh || $a1 == *bench.sh ]]; then echo "$pid ${argv[*]:0:3}"; fi
  done
}
wait_for_other_benchmarks() {
  local deadline=$((SECONDS + WAIT_OTHER)) others said=0
  while others=$(other_benchmarks) && [[ -n $others ]]; do
    ((SECONDS < deadline)) || die "another benchmark is still running after ${WAIT_OTHER}s: $others"
    ((said)) || { echo "waiting (up to ${WAIT_OTHER}s) for another benchmark to end: $others" >&2; said=1; }
    sleep 5
  done
}
wait_for_other_benchmarks

# ---------------------------------------------------------------- builds (before anything starts)
build() { # what cargo-args...
  command -v cargo >/dev/null || die "cargo not found: needed to build $1"
  echo "building $1 (nice cargo build ${*:2})..." >&2
  (cd "$REPO" && nice cargo build "${@:2}") || die "$1 build failed"
}
if [[ $BUILD == 1 || ($BUILD == auto && ! -x $FLEETGATE_BIN) ]]; then build fleetgate --release; fi
if [[ $BUILD == 1 || ($BUILD == auto && ! -x $LOAD_BIN) ]]; then build hub_load --release --example hub_load; fi
if [[ " $TARGETS " == *" ceiling"* ]] && [[ $BUILD == 1 || ($BUILD == auto && ! -x $RAW_BIN) ]]; then
  build raw_fanout --release --example raw_fanout
fi
if [[ " $TARGETS " == *" node"* && ! -d $WS_DIR/node_modules/ws ]]; then
  command -v npm >/dev/null || die "npm not found: needed for the node targets"
  mkdir -p "$WS_DIR" && cp "$WS_SRC"/*.js "$WS_SRC"/package.json "$WS_DIR"/
  (cd "$WS_DIR" && npm install --silent --no-audit --no-fund >/dev/null) || die "npm install in $WS_DIR failed"
fi
[[ -x $FLEETGATE_BIN ]] || die "no fleetgate binary at $FLEETGATE_BIN (BUILD=$BUILD)"
[[ -x $LOAD_BIN ]] || die "no load client at $LOAD_BIN (BUILD=$BUILD)"

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$(realpath -m "${OUT:-$HERE/out/$STAMP-hub}")
RUN=$OUT/run
mkdir -p "$RUN" "$OUT/raw"
SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ---------------------------------------------------------------- process bookkeeping
GW_PID=
CLIENT_PID=
stop_pid() { # pid signal name: signal its process group (or it), wait up to 3 s, then SIGKILL
  local pid=$1 n
  kill "-$2" -- "-$pid" 2>/dev/null || kill "-$2" "$pid" 2>/dev/null || true
  for n in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "  $3 (pid $pid) still alive, SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_gateway() {
  if [[ -n $GW_PID ]]; then stop_pid "$GW_PID" INT server; echo "  stopped the server (pid $GW_PID)" >&2; GW_PID=; fi
}
cleanup() {
  if [[ -n $CLIENT_PID ]]; then stop_pid "$CLIENT_PID" TERM hub_load; CLIENT_PID=; fi
  stop_gateway
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
if port_busy "$HUB_PORT"; then
  ss -Hltnp "sport = :$HUB_PORT" >&2 || true
  die "port $HUB_PORT is already in use (by someone else): free it or set HUB_PORT"
fi

# ---------------------------------------------------------------- gateway
write_config() { # file
  cat >"$1" <<EOF
# generated by bench/hub-bench.sh: the hub alone
threads: $FLEETGATE_THREADS
shutdown: { drain_delay: 0s, grace_period: 1s }
listeners:
  hub:
    listen: 127.0.0.1:$HUB_PORT
hub:
  listener: hub
  apps:
    - id: bench
      key: bench-key
      secret: \${HUB_BENCH_SECRET}
      max_connections: 100000
      max_message_size: 10KiB
EOF
}
start_server() { # part target
  local part=$1 target=$2 cfg=$RUN/fleetgate-$1.yaml log=$RUN/$2-$1.log i cmd
  case $target in
    fleetgate)
      write_config "$cfg"
      HUB_BENCH_SECRET=$SECRET "$FLEETGATE_BIN" validate -c "$cfg" >"$RUN/validate-$part.txt" 2>&1 ||
        { cat "$RUN/validate-$part.txt" >&2; die "fleetgate validate failed for $cfg"; }
      cmd=("$FLEETGATE_BIN" run -c "$cfg") ;;
    ceiling) cmd=("$RAW_BIN" --port "$HUB_PORT") ;;
    ceiling-batch) cmd=("$RAW_BIN" --port "$HUB_PORT" --batch) ;;
    node) cmd=(node "$WS_DIR/standin-hub.js" --port "$HUB_PORT" --key bench-key --app-id bench --secret "$SECRET") ;;
    node-preframe) cmd=(node "$WS_DIR/standin-hub.js" --port "$HUB_PORT" --key bench-key --app-id bench --secret "$SECRET" --preframe) ;;
  esac
  # setsid: its PID is its process group. Stopped with SIGINT (pingora's fast shutdown); a
  # background job starts with SIGINT ignored, --default-signal undoes that.
  # shellcheck disable=SC2046
  HUB_BENCH_SECRET=$SECRET setsid $(pin "$SERVER_CPUS") env --default-signal=INT "${cmd[@]}" >"$log" 2>&1 &
  GW_PID=$!
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$HUB_PORT") 2>/dev/null; then break; fi
    kill -0 "$GW_PID" 2>/dev/null || { tail -20 "$log" >&2; GW_PID=; die "$target exited before opening $HUB_PORT"; }
    sleep 0.1
  done
  ((i < START_TIMEOUT * 10)) || { tail -20 "$log" >&2; die "$target did not open $HUB_PORT within ${START_TIMEOUT}s"; }
  echo "  $target pid $GW_PID ($(pin "$SERVER_CPUS" | sed 's/taskset -c /cpu /'), nofile $(awk '/Max open files/{print $4}' "/proc/$GW_PID/limits"))" >&2
}

# ---------------------------------------------------------------- pre-flight
cpu_snapshot() { grep '^cpu[0-9]' /proc/stat; }
cpu_busy() { # before after -> "cpu0=97% cpu1=55%"
  paste <(echo "$1") <(echo "$2") | awk '{ n = NF / 2; t1 = 0; t2 = 0
    for (i = 2; i <= n; i++) t1 += $i; for (i = n + 2; i <= NF; i++) t2 += $i
    dt = t2 - t1; if (dt <= 0) dt = 1
    printf "%s=%d%% ", $1, 100 * (dt - ($(n + 5) + $(n + 6) - $5 - $6)) / dt }'
}
before=$(cpu_snapshot); sleep 2
IDLE_CPU=$(cpu_busy "$before" "$(cpu_snapshot)")
QUIET=yes
for v in $IDLE_CPU; do [[ ${v#*=} =~ ^([0-9]+)%$ ]] && ((BASH_REMATCH[1] > QUIET_MAX)) && QUIET=no; done
{
  echo "date: $(date -Is)"
  echo "host: $(uname -srm); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "mem: $(free -g | awk '/Mem:/{print $2" GiB"}'); ulimit -n $(ulimit -n); ephemeral ports $PORT_LO-$PORT_HI; tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
  echo "knobs: PARTS=\"$PARTS\" TARGETS=\"$TARGETS\" STALLED=$STALLED SUBS=$SUBS PUBLISHERS=$PUBLISHERS RATE=$RATE GATE=$GATE PAYLOAD=$PAYLOAD SPIN=$SPIN WARMUP=$WARMUP DURATION=$DURATION DRAIN=$DRAIN IDLE_CONNS=$IDLE_CONNS HOLD=$HOLD RAMP=$RAMP WS_IMPL=$WS_IMPL CLIENT_THREADS=$CLIENT_THREADS PIN=$PIN SERVER_CPUS=$SERVER_CPUS LOAD_CPUS=$LOAD_CPUS"
  echo "fleetgate: $FLEETGATE_BIN (built $(date -r "$FLEETGATE_BIN" -Is); git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$( [[ -n $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] && echo ', src dirty')), threads: 1"
  echo "load client: $LOAD_BIN (built $(date -r "$LOAD_BIN" -Is)), $CLIENT_THREADS subscriber thread(s) + 1 publisher thread"
  if [[ -n $LIMIT_NOTE ]]; then echo "WARNING: $LIMIT_NOTE"; fi
  echo "idle load before the run (2 s): $IDLE_CPU$( [[ $QUIET == no ]] && echo " — WARNING: the machine is busy with something else, numbers will be skewed")"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt"

# ---------------------------------------------------------------- parts
run_client() { # name limit-seconds client-args... -> raw/<name>.txt (shown live)
  local part=$1 limit=$2 f=$OUT/raw/$1.txt rc=0
  shift 2
  # shellcheck disable=SC2046
  HUB_SECRET=$SECRET timeout -k 5 "$limit" $(pin "$LOAD_CPUS") "$LOAD_BIN" "$@" > >(tee "$f") 2>&1 &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=
  ((rc != 124)) || echo "  hub_load hit its ${limit}s time limit" | tee -a "$f"
  sleep 0.2 # let tee finish
}
client_args() { # part
  local common=(--addr "127.0.0.1:$HUB_PORT" --key bench-key --threads "$CLIENT_THREADS" --ramp "$RAMP"
    --connect-timeout "$CONNECT_TIMEOUT" --server-pid "$GW_PID" --ws "$WS_IMPL")
  case $1 in
    fanout) echo fanout "${common[@]}" --app-id bench --secret-env HUB_SECRET --subs "$SUBS" \
      --publishers "$PUBLISHERS" --rate "$RATE" --gate "$GATE" --payload "$PAYLOAD" --warmup "$WARMUP" \
      --duration "$DURATION" --drain "$DRAIN" --spin "$SPIN" --stalled "$STALLED" ;;
    idle) echo idle "${common[@]}" --conns "$IDLE_CONNS" --hold "$HOLD" --settle "$SETTLE" ;;
  esac
}
: >"$OUT/results.jsonl"
for part in $PARTS; do
  case $part in
    fanout) limit=$((CONNECT_TIMEOUT + WARMUP + DURATION + DRAIN + 30)); targets=$TARGETS ;;
    idle) limit=$((CONNECT_TIMEOUT + HOLD + SETTLE + 30)); targets=fleetgate ;;
  esac
  for target in $targets; do
    name=$part-$target
    for attempt in $(seq 0 "$RETRY_NOISY"); do
      wait_for_other_benchmarks
      if ((WAIT_QUIET > 0)); then wait_quiet "$WAIT_QUIET" "$QUIET_MAX"; fi
      echo
      echo "== $part: $target$( ((attempt > 0)) && echo " (again: other load)")"
      start_server "$part" "$target"
      child_ticks "$RUN/c0"; before=$(cpu_snapshot); t0=$(total_ticks); o0=$(our_ticks "$GW_PID")
      # shellcheck disable=SC2046
      run_client "$name" "$limit" $(client_args "$part")
      cpu=$(cpu_busy "$before" "$(cpu_snapshot)"); t1=$(total_ticks); o1=$(our_ticks "$GW_PID"); child_ticks "$RUN/c1"
      other=$(other_pct "$t0" "$t1" "$o0" "$o1" "$(<"$RUN/c0")" "$(<"$RUN/c1")")
      stop_gateway
      echo "  whole part: ${cpu}other=$other%$( ((other > OTHER_MAX)) && echo "  <- other load on the machine: numbers skewed")" |
        tee -a "$OUT/raw/$name.txt"
      ((other > OTHER_MAX && attempt < RETRY_NOISY)) || break
      sleep 1
    done
    line=$(grep '^RESULT ' "$OUT/raw/$name.txt" | tail -1 | sed 's/^RESULT //' || true)
    if [[ -n $line ]]; then
      echo "$line" | jq -c --arg cpu "$cpu" --argjson other "$other" --arg target "$target" \
        '. + {target: $target, cpu_part: $cpu, other_load_pct: $other}' >>"$OUT/results.jsonl"
    else
      echo "  $name: no result (see $OUT/raw/$name.txt)"
    fi
    sleep 1
  done
done

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
{
  echo
  echo "### hub: servers on cpu $SERVER_CPUS (fleetgate threads: $FLEETGATE_THREADS), hub_load on cpu $LOAD_CPUS ($WS_IMPL ws)"
  echo
  if [[ -n $LIMIT_NOTE ]]; then echo "**WARNING**: $LIMIT_NOTE"; echo; fi
  echo "| fan-out server | deliveries/s | per server CPU-s | p50 | p99 | received / expected | 4100 | vs node-preframe | vs ceiling |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -rs '[.[] | select(.mode == "fanout")] as $rows
    | ($rows | map(select(.target == "node-preframe"))[0].deliveries_per_sec) as $node
    | ($rows | map(select(.target == "ceiling"))[0].deliveries_per_sec) as $ceiling
    | def ms: if . == null then "-" else "\(. / 1000 * 100 | round / 100) ms" end;
      def ratio($base): if $base == null or $base == 0 then "-" else "\(. / $base * 100 | round / 100)×" end;
      $rows[] | "| \(.target) | \(.deliveries_per_sec) | \(.deliveries_per_gateway_cpu_sec // "-") | \(.latency_us.p50 | ms) | \(.latency_us.p99 | ms) | \(.deliveries_received) / \(.deliveries_expected) | \(.slow_consumer_4100) | \(.deliveries_per_sec | ratio($node)) | \(.deliveries_per_sec | ratio($ceiling)) |"' "$OUT/results.jsonl"
  echo
  echo "fleetgate in detail:"
  echo
  echo "| figure | value | goal |"
  echo "|---|---:|---|"
  jq -r 'select(.mode == "fanout" and .target == "fleetgate") |
    def ms: if . == null then "-" else "\(. / 1000 * 100 | round / 100) ms" end;
    def pct: if . == null then "-" else "\(. * 100 | round)%" end;
    "| fan-out subscribers | \(.subscribers) (\(.connect_failed) failed) | |",
    "| events published (window) | \(.events_in_window) in \(.window_secs * 10 | round / 10) s (\(.events_failed) failed) | |",
    "| deliveries/s (= per server core) | \(.deliveries_per_sec) | ≥ 2.0× node-preframe, ≥ 0.8× ceiling (ratios above) |",
    "| deliveries per gateway CPU-second | \(.deliveries_per_gateway_cpu_sec // "-") | |",
    "| latency p50 / p99 / max | \(.latency_us.p50 | ms) / \(.latency_us.p99 | ms) / \(.latency_us.max | ms) | \(if .rate > 0 then "p99 < 50 ms at half the maximum rate — \(if (.latency_us.p99 // 1e12) < 50000 then "met" else "MISSED" end)" else "(closed loop: p99 is a goal in an open loop only)" end) |",
    "| deliveries expected / received | \(.deliveries_expected) / \(.deliveries_received) | equal |",
    "| 4100 slow-consumer disconnects | \(.slow_consumer_4100) | 0 |",
    "| cores used in the window: gateway / client | \(.gateway_cores // 0 | . * 100 | round / 100) / \(.client_cores // 0 | . * 100 | round / 100) | |",
    "| other load (whole part) | \(.other_load_pct)% | ≤ '"$OTHER_MAX"'% |"' "$OUT/results.jsonl"
  jq -r 'select(.mode == "idle") |
    "| idle connections | \(.connections) (\(.connect_failed) failed) | ≥ 20,000 |",
    "| gateway VmRSS before / after | \(.rss_before_kib) / \(.rss_after_kib) KiB | |",
    "| RSS per idle connection | \(.rss_per_conn_kib) KiB | ≤ 16 KiB — \(if .rss_per_conn_kib <= 16 then "met" else "MISSED" end) |",
    "| gateway VmRSS \(.settle_secs // 2) s after closing them | \(.rss_after_close_kib // "-") KiB | ≤ 2 × before — \(if (.rss_after_close_kib // 1e12) <= 2 * .rss_before_kib then "met" else "MISSED" end) |",
    "| gateway open fds: before / with them / after closing | \(.gateway_fds.before // "-") / \(.gateway_fds.open // "-") / \(.gateway_fds.after_close // "-") | back to before |",
    "| other load (whole part) | \(.other_load_pct)% | ≤ '"$OTHER_MAX"'% |"' "$OUT/results.jsonl"
  echo
  grep -h 'bottleneck:' "$OUT"/raw/*.txt 2>/dev/null | sed 's/^ */* /' || true
  echo "* naive Node \`ws\` hub on these machines: 100–165k deliveries/s (earlier design notes)"
} | tee "$SUMMARY"
echo
echo "raw outputs: $OUT"
