#!/usr/bin/env bash
# reload-bench.sh — how fast a gateway.yaml change applies, and what reloading costs under load.
#
# Starts 4 bench-upstreams (127.0.0.1:3001-3004) and fleetgate (`threads: 1`, pinned like
# proxy-bench.sh: servers on SERVER_CPUS, load on LOAD_CPUS), then:
#   apply    ROUNDS times, a new config (workspace 999's pin flipped) is renamed over the file and
#            the time until a request for 999 is served by the new pin is measured (inotify watch +
#            20 ms debounce + parse/validate/swap); then ROUNDS `POST /admin/reload` answers (the
#            apply alone). Goal: apply < 50 ms.
#   load     wrk GET load (random workspaces) for DURATION without reloads, then for DURATION with
#            the config rewritten every second, REPEATS times alternating; every run and the
#            medians of req/s and p99. Goal: no p99 change.
# Loopback only, bounded in time, everything stopped on exit. Results: bench/out/<stamp>-reload/.
#
# Usage:   bench/reload-bench.sh            # defaults (~2.5 min)
# Knobs:   ROUNDS=30 DURATION=20s REPEATS=3 CONNS=64 PIN=1 SERVER_CPUS=0 LOAD_CPUS=1 PORT=18093 ADMIN_PORT=19093
#          BUILD=auto|1|0 FLEETGATE_BIN WAIT_QUIET=0 QUIET_MAX=15 OTHER_MAX=100 RETRY_NOISY=0
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BENCH_NAME=reload-bench
ROUNDS=${ROUNDS:-30} DURATION=${DURATION:-20s} REPEATS=${REPEATS:-3} CONNS=${CONNS:-64} PIN=${PIN:-1}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1} PORT=${PORT:-18093} ADMIN_PORT=${ADMIN_PORT:-19093}
BUILD=${BUILD:-auto} START_TIMEOUT=${START_TIMEOUT:-15}
WAIT_QUIET=${WAIT_QUIET:-0} QUIET_MAX=${QUIET_MAX:-15} OTHER_MAX=${OTHER_MAX:-100} RETRY_NOISY=${RETRY_NOISY:-0}
FLEETGATE_BIN=${FLEETGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/fleetgate}
UPSTREAM_BIN=${UPSTREAM_BIN:-$HERE/upstream/target/release/bench-upstream}
# shellcheck source=lib-run.sh
source "$HERE/lib-run.sh"
WRK_THREADS=${WRK_THREADS:-$(count_cpus "$LOAD_CPUS")}

need=(wrk setsid python3 ss timeout)
[[ $PIN == 1 ]] && need+=(taskset)
ensure_tools "${need[@]}"
build_upstream
build_fleetgate
refuse_busy_ports "free them or set PORT/ADMIN_PORT" "$PORT" "$ADMIN_PORT" 3001 3002 3003 3004
setup_out "$HERE/out/$(date +%Y%m%d-%H%M%S)-reload"
trap stop_all EXIT
trap 'exit 130' INT TERM

LISTEN=127.0.0.1:$PORT ADMIN=127.0.0.1:$ADMIN_PORT CONFIG=$RUN/gateway.yaml
tool() { python3 "$HERE/reload_tool.py" "$@"; }
tool config "$CONFIG" "$LISTEN" "$ADMIN" u1
for k in 1 2 3 4; do start_proc "u$k" "$SERVER_CPUS" TERM "$UPSTREAM_BIN" "300$k" "u$k" 1; done
for k in 1 2 3 4; do wait_port "300$k" "u$k"; done
start_proc fleetgate "$SERVER_CPUS" INT env FLEETGATE_LOG=warn "$FLEETGATE_BIN" run -c "$CONFIG"
wait_port "$PORT" fleetgate

{
  meta_host
  echo "fleetgate: $FLEETGATE_BIN ($(fleetgate_built)), threads 1 on cpu $SERVER_CPUS; wrk -t$WRK_THREADS -c$CONNS on cpu $LOAD_CPUS"
  echo
  echo "apply time ($ROUNDS rounds each):"
  tool apply "$CONFIG" "$LISTEN" "$ADMIN" "$ROUNDS" | tee "$OUT/raw/apply.txt" | grep -v '^RESULT'
  echo
  echo "GET load for $DURATION, without and with a reload every second ($REPEATS runs each, alternating):"
  printf '  %-22s %10s %10s %10s %8s\n' case req/s "p50 µs" "p99 µs" errors
  declare -A RPS P99
  for rep in $(seq 1 "$REPEATS"); do
    for case in steady reloading; do
      reloader_pid=
      if [[ $case == reloading ]]; then
        tool reloader "$CONFIG" "$LISTEN" "$ADMIN" "$(to_secs "$DURATION")" >"$OUT/raw/reloader-$rep.txt" &
        reloader_pid=$!
      fi
      measure "$case" : wrk_run get "http://$LISTEN" "$DURATION" "$OUT/raw/wrk-$case-$rep.txt"
      [[ -n $reloader_pid ]] && wait "$reloader_pid"
      read_result "$OUT/raw/wrk-$case-$rep.txt" "$case" || continue
      printf '  %-22s %10s %10s %10s %8s\n' "$case #$rep" "$r_rps" "$r_p50_us" "$r_p99_us" "$errs"
      RPS[$case]+="$r_rps " P99[$case]+="$r_p99_us "
    done
  done
  median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  for case in steady reloading; do
    printf '  %-22s %10s %10s %10s\n' "$case (median)" "$(median <<<"${RPS[$case]}")" "" "$(median <<<"${P99[$case]}")"
  done
} | tee "$OUT/summary.md"
echo "raw outputs: $OUT"
