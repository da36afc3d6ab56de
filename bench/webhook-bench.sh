#!/usr/bin/env bash
# webhook-bench.sh — fleetgate's verified webhook route vs nginx proxying the same POSTs unverified.
#
# One upstream (bench-upstream on 127.0.0.1:$UPSTREAM_PORT, one thread, answers 200 to anything)
# stands in for Laravel. In front of it:
#   fleetgate  a `treatment: webhook` route (scheme hex-timestamp-body): reads the body, verifies
#              X-HMAC-Signature = hex HMAC-SHA256(secret, X-Timestamp ++ body), checks the replay
#              cache, forwards the identical bytes;
#   nginx      proxy_pass of the same POST, no verification (what it would cost without fleetgate).
# Two parts, measured in one run:
#   2k   wrk, CONNS connections, median of REPEATS x DURATION: req/s, p50, p99 and fleetgate/nginx
#        (goal: fleetgate >= 1.1x nginx req/s). Every request is a distinct, validly signed
#        delivery: N_BODIES distinct 2 KB bodies signed with a fresh timestamp just before each wrk
#        run (webhook_tool.py gen2k -> a Lua data file that lua/webhook.lua cycles through). The
#        fleetgate route has `duplicates.capacity: 1`, so a body sent N_BODIES requests ago is not a
#        duplicate anymore: this measures verify + forward, not the replay cache.
#   spool  the spool (issue 14): the same 2 KB load for SPOOL_DURATION with the upstream (Laravel)
#        stopped: webhooks/s into the spool (every answer 202, synced to disk before it); then the
#        upstream is started and the drain is timed until the spool is empty (GET /admin/spool).
#        The 2k part also measures `fleetgate-nospool` (the same route, `spool: { enabled: false }`)
#        beside `fleetgate`, so the happy path's cost of the spool is a ratio from one run.
#   big  BIG_MIB (50) MiB signed webhooks with curl: BIG_SEQ sequential requests, then BIG_INFLIGHT
#        workers x BIG_PER requests in parallel. MB/s, req/s and peak RSS (VmHWM, summed over the
#        process group: fleetgate is one process, nginx master + workers) plus VmRSS sampled during
#        the run. Each (target, mode) runs on a freshly started proxy, so VmHWM covers only it.
#        Reported: (peak - RSS before) / in-flight requests / body size (goal <= 2x; fleetgate
#        buffers a webhook body to verify it before forwarding, so ~1x is expected).
# Pinned like proxy-bench.sh: upstream + proxy on SERVER_CPUS (cpu 0), wrk / curl on LOAD_CPUS (1).
# Everything on 127.0.0.1, bounded in time, every process stopped on exit (also Ctrl-C); refuses
# to start if one of its ports is taken.
#
# Usage:   bench/webhook-bench.sh
#          PARTS=2k REPEATS=1 DURATION=3s bench/webhook-bench.sh        # quick check
# Knobs (env):
#   PARTS="2k spool big"  SPOOL_DURATION=5s ADMIN_PORT=18091 NOSPOOL_PORT=18097  DURATION=10s WARMUP=2s CONNS=64 REPEATS=3 N_BODIES=5000 BODY_BYTES=2048
#   BIG_MIB=50 BIG_SEQ=10 BIG_INFLIGHT=4 BIG_PER=5 BIG_TIMEOUT=120 (seconds per request)
#   SERVER_CPUS=0 LOAD_CPUS=1 PROXY_WORKERS (default: cpus in SERVER_CPUS) WRK_THREADS (cpus in LOAD_CPUS)
#   UPSTREAM_PORT=3001 NGINX_PORT=18081 FLEETGATE_PORT=18090
#   NGINX_REQUEST_BUFFERING=on   nginx's proxy_request_buffering (on = its default: spool, then send)
#   BUILD=auto|1|0  FLEETGATE_BIN  START_TIMEOUT=15
#   QUIET_MAX=15 WAIT_QUIET=0 OTHER_MAX=5 RETRY_NOISY=0   as in proxy-bench.sh: wait up to WAIT_QUIET s
#                   for a quiet machine before each wrk run; a run where others used > OTHER_MAX % of
#                   the machine is flagged, and measured again up to RETRY_NOISY times
#   KEEP_INPUTS=0   1: keep the generated inputs (run/big-*MiB.json, run/webhooks.lua) after the run
#   BENCH_SECRET    HMAC secret (default: a random one per run)
#   FLEETGATE_NOTE  free text recorded next to the binary in meta.txt (e.g. which commit it was built from)
#   OUT=bench/out/<stamp>-webhook
set -Eeuo pipefail
trap 'echo "webhook-bench: failed (exit $?) at ${BASH_SOURCE[0]##*/} line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BENCH_NAME=webhook-bench # die's prefix
# shellcheck source=lib-run.sh
source "$HERE/lib-run.sh"
PARTS=${PARTS:-"2k spool big"}
SPOOL_DURATION=${SPOOL_DURATION:-5s}
ADMIN_PORT=${ADMIN_PORT:-18091}
NOSPOOL_PORT=${NOSPOOL_PORT:-18097}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
REPEATS=${REPEATS:-3}
N_BODIES=${N_BODIES:-5000}
BODY_BYTES=${BODY_BYTES:-2048}
BIG_MIB=${BIG_MIB:-50}
BIG_SEQ=${BIG_SEQ:-10}
BIG_INFLIGHT=${BIG_INFLIGHT:-4}
BIG_PER=${BIG_PER:-5}
BIG_TIMEOUT=${BIG_TIMEOUT:-120}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
UPSTREAM_PORT=${UPSTREAM_PORT:-3001}
NGINX_PORT=${NGINX_PORT:-18081}
FLEETGATE_PORT=${FLEETGATE_PORT:-18090}
NGINX_REQUEST_BUFFERING=${NGINX_REQUEST_BUFFERING:-on}
BUILD=${BUILD:-auto}
FLEETGATE_BIN=${FLEETGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/fleetgate}
UPSTREAM_BIN=${UPSTREAM_BIN:-$HERE/upstream/target/release/bench-upstream}
START_TIMEOUT=${START_TIMEOUT:-15}
QUIET_MAX=${QUIET_MAX:-15}
WAIT_QUIET=${WAIT_QUIET:-0}
OTHER_MAX=${OTHER_MAX:-5}
RETRY_NOISY=${RETRY_NOISY:-0}
KEEP_INPUTS=${KEEP_INPUTS:-0}
WH_PATH=/api/whatsapp/webhooks/webjs
TOOL=$HERE/webhook_tool.py
TARGETS="nginx fleetgate fleetgate-nospool"
PIN=1       # always pinned: upstream + proxy on SERVER_CPUS, wrk / curl on LOAD_CPUS
WRK_SLACK=60 # wrk's safety-net timeout: duration + this

has_part() { [[ " $PARTS " == *" $1 "* ]]; }
for p in $PARTS; do [[ $p == 2k || $p == spool || $p == big ]] || die "unknown part '$p' (known: 2k spool big)"; done
[[ $(to_secs "$DURATION") =~ ^[0-9]+$ && $(to_secs "$WARMUP") =~ ^[0-9]+$ ]] || die "DURATION/WARMUP must look like 10, 10s, 2m"
(($(to_secs "$DURATION") + $(to_secs "$WARMUP") < 200)) || die "DURATION must stay well inside the 300 s timestamp tolerance"
for v in CONNS REPEATS N_BODIES BODY_BYTES BIG_MIB BIG_SEQ BIG_INFLIGHT BIG_PER BIG_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((BIG_MIB <= 63)) || die "BIG_MIB must stay under the route's max_body (64MiB)"
((N_BODIES > CONNS * 4)) || die "N_BODIES ($N_BODIES) must be well above CONNS ($CONNS): distinct deliveries in flight"
((BIG_SEQ + BIG_INFLIGHT * BIG_PER < 250)) || die "too many big requests: their timestamps (now-k) would leave the 300 s window"
[[ $NGINX_REQUEST_BUFFERING == on || $NGINX_REQUEST_BUFFERING == off ]] || die "NGINX_REQUEST_BUFFERING must be on or off"
PROXY_WORKERS=${PROXY_WORKERS:-$(count_cpus "$SERVER_CPUS")}
WRK_THREADS=${WRK_THREADS:-$(count_cpus "$LOAD_CPUS")}

# ---------------------------------------------------------------- tools (apt-get when missing), builds
ensure_tools wrk nginx taskset setsid curl jq openssl ss awk timeout python3 bc
build_upstream
build_fleetgate
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

setup_out "$HERE/out/$(date +%Y%m%d-%H%M%S)-webhook"
# The HMAC secret lives only in this run (environment of fleetgate and of the signing helper).
export BENCH_SECRET=${BENCH_SECRET:-bench-$(openssl rand -hex 16)}

# ---------------------------------------------------------------- processes: all stopped on exit (lib-run.sh)
cleanup() {
  stop_all
  # generated inputs are regenerated every run: do not leave ~60 MB per run in bench/out
  if [[ $KEEP_INPUTS != 1 ]]; then rm -f "$RUN"/big-*MiB.json "$RUN"/big-*MiB.json.tmp "$RUN/webhooks.lua" "$RUN/webhooks.lua.tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A PORT_OF=([nginx]=$NGINX_PORT [fleetgate]=$FLEETGATE_PORT [fleetgate-nospool]=$NOSPOOL_PORT)
start_target() { # nginx|fleetgate|fleetgate-nospool
  case $1 in
    nginx) start_proc nginx "$SERVER_CPUS" TERM nginx -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" ;;
    # SIGINT: pingora's fast shutdown; a background job starts with SIGINT ignored, --default-signal undoes it
    fleetgate | fleetgate-nospool)
      start_proc "$1" "$SERVER_CPUS" INT env --default-signal=INT "$FLEETGATE_BIN" run -c "$RUN/$1.yaml" --upgrade-socket "$RUN/$1-upgrade.sock" ;;
  esac
  wait_port "${PORT_OF[$1]}" "$1"
}
restart_target() { stop_proc "$1"; wait_port_free "${PORT_OF[$1]}"; start_target "$1"; }

# ---------------------------------------------------------------- pre-flight: ports, configs
refuse_busy_ports "free them or pick other ports (UPSTREAM_PORT, NGINX_PORT, FLEETGATE_PORT, NOSPOOL_PORT, ADMIN_PORT); is another benchmark running?" \
  "$UPSTREAM_PORT" "$NGINX_PORT" "$FLEETGATE_PORT" "$NOSPOOL_PORT" "$ADMIN_PORT"

cat >"$RUN/fleetgate.yaml" <<EOF
# generated by bench/webhook-bench.sh — verified webhook route in front of one upstream.
# duplicates.capacity: 1 — the bench cycles through $N_BODIES distinct deliveries, so it measures
# verify + forward, not the replay cache.
threads: $PROXY_WORKERS
shutdown: { drain_delay: 0s, grace_period: 1s }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
spool: { dir: "$RUN/spool" }
listeners:
  edge:
    listen: 127.0.0.1:$FLEETGATE_PORT
upstreams:
  laravel:
    instances:
      - { name: laravel, addr: 127.0.0.1:$UPSTREAM_PORT }
    health: { path: /, expect: any, interval: 500ms, timeout: 250ms }
routes:
  - name: webhooks
    listener: edge
    path_prefix: $WH_PATH
    upstream: laravel
    treatment: webhook
    max_body: 64MiB
    webhook:
      scheme: hex-timestamp-body
      secrets: ["\${BENCH_SECRET}"]
      duplicates: { ttl: 600s, capacity: 1 }
EOF
# The same route without the spool (and without an admin listener): the happy path's reference.
sed -e "s|^admin: .*|# no admin listener|" -e "s|^spool: .*|spool: { enabled: false }|" \
  -e "s|127.0.0.1:$FLEETGATE_PORT|127.0.0.1:$NOSPOOL_PORT|" "$RUN/fleetgate.yaml" >"$RUN/fleetgate-nospool.yaml"
for c in fleetgate fleetgate-nospool; do
  "$FLEETGATE_BIN" validate -c "$RUN/$c.yaml" >"$RUN/$c-validate.log" 2>&1 ||
    { cat "$RUN/$c-validate.log" >&2; die "fleetgate validate failed for $RUN/$c.yaml"; }
done
sed -e "s|@WORKERS@|$PROXY_WORKERS|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@RUN@|$RUN|g" \
  -e "s|@UPSTREAM@|127.0.0.1:$UPSTREAM_PORT|g" -e "s|@REQBUF@|$NGINX_REQUEST_BUFFERING|g" \
  "$HERE/conf/nginx-webhook.conf.tmpl" >"$RUN/nginx.conf"
nginx -t -q -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" 2>"$RUN/nginx-t.log" || { cat "$RUN/nginx-t.log" >&2; die "nginx -t failed"; }

idle_check

{
  meta_host
  echo "knobs: PARTS=\"$PARTS\" DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS REPEATS=$REPEATS N_BODIES=$N_BODIES BODY_BYTES=$BODY_BYTES BIG_MIB=$BIG_MIB BIG_SEQ=$BIG_SEQ BIG_INFLIGHT=$BIG_INFLIGHT BIG_PER=$BIG_PER SERVER_CPUS=$SERVER_CPUS LOAD_CPUS=$LOAD_CPUS PROXY_WORKERS=$PROXY_WORKERS WRK_THREADS=$WRK_THREADS NGINX_REQUEST_BUFFERING=$NGINX_REQUEST_BUFFERING"
  echo "wrk: $(wrk_version)"
  echo "nginx: $(nginx -v 2>&1)"
  echo "fleetgate: $FLEETGATE_BIN ($(fleetgate_built))${FLEETGATE_NOTE:+ — $FLEETGATE_NOTE}"
  meta_idle
} >"$OUT/meta.txt"
cat "$OUT/meta.txt"

# ---------------------------------------------------------------- start servers
start_proc upstream "$SERVER_CPUS" TERM "$UPSTREAM_BIN" "$UPSTREAM_PORT" laravel 1
wait_port "$UPSTREAM_PORT" upstream
for t in $TARGETS; do start_target "$t"; done

# ---------------------------------------------------------------- checks (abort if fleetgate does not verify)
CHECKS=$OUT/checks.txt
URL() { echo "http://127.0.0.1:${PORT_OF[$1]}$WH_PATH"; }
post_one() { # target body-file headers-file [extra curl args...] -> "code size_header size_download"
  local t=$1 body=$2 hdrs=$3
  shift 3
  curl -s -m 5 -o "$RUN/check-resp.txt" -w '%{http_code} %{size_header} %{size_download}' -X POST \
    -H 'Content-Type: application/json' -H @"$hdrs" --data-binary @"$body" "$@" "$(URL "$t")" || echo "000 0 0"
}
echo | tee "$CHECKS"
echo "checks:" | tee -a "$CHECKS"
declare -A RESP_BYTES=()
python3 "$TOOL" one "$RUN" "$BODY_BYTES"
read -r code sh sd <<<"$(post_one fleetgate "$RUN/one.json" "$RUN/one.headers")"
RESP_BYTES[fleetgate]=$((sh + sd))
read -r bad _ _ <<<"$(post_one fleetgate "$RUN/tampered.json" "$RUN/one.headers")"
dup=$(curl -s -m 5 -D - -o /dev/null -X POST -H 'Content-Type: application/json' -H @"$RUN/one.headers" \
  --data-binary @"$RUN/one.json" "$(URL fleetgate)" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-fleetgate-duplicate" { print $2 }' || true)
read -r scode sh sd <<<"$(post_one fleetgate-nospool "$RUN/one.json" "$RUN/one.headers")"
RESP_BYTES[fleetgate-nospool]=$((sh + sd))
[[ $scode == 200 ]] || die "fleetgate-nospool did not answer 200: see $RUN/fleetgate-nospool.log"
read -r ncode sh sd <<<"$(post_one nginx "$RUN/one.json" "$RUN/one.headers")"
RESP_BYTES[nginx]=$((sh + sd))
printf '  fleetgate: signed 2 KB delivery -> %s (want 200), tampered body -> %s (want 401), same delivery again -> X-Fleetgate-Duplicate: %s (capacity 1: the last one is remembered)\n' \
  "$code" "$bad" "${dup:-none}" | tee -a "$CHECKS"
printf '  nginx:     signed 2 KB delivery -> %s (want 200; nginx does not verify)\n' "$ncode" | tee -a "$CHECKS"
[[ $code == 200 && $bad == 401 ]] || die "fleetgate does not verify as expected (200/401): see $RUN/fleetgate.log"
[[ $ncode == 200 ]] || die "nginx did not answer 200: see $RUN/nginx-error.log"

# ---------------------------------------------------------------- part 1: 2 KB verified webhooks (wrk)
RESULTS=$OUT/results-2k.tsv
gen_data() { # fresh timestamps: just before each wrk run (they must be within 300 s of the gateway's clock)
  taskset -c "$LOAD_CPUS" python3 "$TOOL" gen2k "$RUN/webhooks.lua" "$N_BODIES" "$BODY_BYTES" >/dev/null
}
run_wrk() { # target duration outfile
  WRK_DATA=$RUN/webhooks.lua WRK_THREADS=$WRK_THREADS WRK_PATH=$WH_PATH wrk_run webhook "http://127.0.0.1:${PORT_OF[$1]}/" "$2" "$3"
}
if has_part 2k; then
  printf 'target\trep\trps\tp50_us\tp90_us\tp99_us\terrors\tresp_bytes\tcpu\tother_load_pct\n' >"$RESULTS"
  echo
  echo "2 KB verified webhooks: wrk -t$WRK_THREADS -c$CONNS -d$DURATION x $REPEATS, $N_BODIES distinct signed bodies per run (wrk on cpu $LOAD_CPUS, upstream + proxy on cpu $SERVER_CPUS)"
  for t in $TARGETS; do gen_data; run_wrk "$t" "$WARMUP" "$OUT/raw/2k-$t-warmup.txt"; done
  for rep in $(seq 1 "$REPEATS"); do
    for t in $TARGETS; do
      f=$OUT/raw/2k-$t-$rep.txt
      measure "$t #$rep" gen_data run_wrk "$t" "$DURATION" "$f"
      read_result "$f" "$t #$rep" || continue
      rb=$((r_reqs > 0 ? r_bytes / r_reqs : 0))
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rep" "$r_rps" "$r_p50_us" "$r_p90_us" "$r_p99_us" "$errs" "$rb" "$cpu" "$other" >>"$RESULTS"
      # a duplicate answer is shorter than a forwarded one: bytes/response shows if any slipped in
      flag=""
      if ((rb * 100 < RESP_BYTES[$t] * 99 || rb * 100 > RESP_BYTES[$t] * 101)); then flag="  <- bytes/response != ${RESP_BYTES[$t]} (forwarded answer): duplicates/errors?"; fi
      ((other > OTHER_MAX)) && flag="$flag  <- other load on the machine"
      printf '  %-10s #%d  %9.0f req/s  p50 %6d us  p99 %6d us  errors %d  %d B/resp  %s other=%d%%%s\n' \
        "$t" "$rep" "$r_rps" "$r_p50_us" "$r_p99_us" "$errs" "$rb" "$cpu" "$other" "$flag"
    done
  done
fi

# ---------------------------------------------------------------- part: the spool (Laravel away, then back)
SPOOLED=$OUT/results-spool.tsv
spool_depth() { curl -s -m 2 "http://127.0.0.1:$ADMIN_PORT/admin/spool" | jq '[.routes[].depth] | add // 0'; }
if has_part spool; then
  echo
  echo "spool: 2 KB verified webhooks with the upstream stopped (wrk -t$WRK_THREADS -c$CONNS -d$SPOOL_DURATION), then the drain once it is back"
  restart_target fleetgate
  stop_proc upstream
  # The health check notices the upstream is gone (interval 500 ms); the first requests find out themselves.
  gen_data
  f=$OUT/raw/spool-in.txt
  measure "spool in" : run_wrk fleetgate "$SPOOL_DURATION" "$f"
  read_result "$f" "spool in" || die "no wrk result for the spool part"
  in_rps=$r_rps in_p99=$r_p99_us in_errs=$errs in_reqs=$r_reqs
  depth=$(spool_depth)
  printf '  into the spool: %.0f webhooks/s  p99 %d us  errors %d (non-2xx included)  queued %s of %s answered  %s other=%d%%\n' \
    "$in_rps" "$in_p99" "$in_errs" "$depth" "$in_reqs" "$cpu" "$other"
  start_proc upstream "$SERVER_CPUS" TERM "$UPSTREAM_BIN" "$UPSTREAM_PORT" laravel 1
  wait_port "$UPSTREAM_PORT" upstream
  t0=$(date +%s.%N)
  while (($(spool_depth) > 0)); do
    (($(echo "$(date +%s.%N) - $t0 > 600" | bc) == 0)) || die "the spool did not drain within 600 s"
    sleep 0.1
  done
  drain_s=$(echo "$(date +%s.%N) - $t0" | bc)
  drain_rps=$(echo "$depth / $drain_s" | bc -l)
  printf '  drained %s webhooks in %.1f s: %.0f webhooks/s to the upstream (one at a time, in order, each signed again)\n' "$depth" "$drain_s" "$drain_rps"
  printf 'in_rps\tin_p99_us\tin_errors\tqueued\tdrain_s\tdrain_rps\n%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$in_rps" "$in_p99" "$in_errs" "$depth" "$drain_s" "$drain_rps" >"$SPOOLED"
fi

# ---------------------------------------------------------------- part 2: 50 MiB bodies (curl), RSS
BIG=$OUT/results-big.tsv
if has_part big; then
  BIG_BODY=$RUN/big-${BIG_MIB}MiB.json
  python3 "$TOOL" bigbody "$BIG_BODY" "$BIG_MIB"
  printf 'target\tmode\tinflight\trequests\tok\twall_s\tmb_per_s\treq_per_s\treq_time_p50_s\trss_base_kib\tvmhwm_kib\trss_sampled_max_kib\tper_inflight_x_body\tcodes\tother_load_pct\n' >"$BIG"
  echo
  echo "${BIG_MIB} MiB signed webhooks (curl on cpu $LOAD_CPUS; each target freshly started per mode; RSS summed over its process group)"
  for mode in seq conc; do
    if [[ $mode == seq ]]; then inflight=1; per=$BIG_SEQ; else inflight=$BIG_INFLIGHT; per=$BIG_PER; fi
    for t in nginx fleetgate; do
      restart_target "$t"
      # one small delivery first: connections and buffers in place before the baseline RSS
      python3 "$TOOL" one "$RUN" "$BODY_BYTES"
      read -r wcode _ _ <<<"$(post_one "$t" "$RUN/one.json" "$RUN/one.headers")"
      [[ $wcode == 200 ]] || die "$t: warm-up delivery got $wcode"
      sleep 0.5
      j=$OUT/raw/big-$t-$mode.json
      if ((WAIT_QUIET > 0)); then wait_quiet "$WAIT_QUIET" "$QUIET_MAX"; fi
      window_open
      taskset -c "$LOAD_CPUS" timeout -k 5 "$((per * BIG_TIMEOUT + 300))" python3 "$TOOL" bigrun --url "$(URL "$t")" \
        --body "$BIG_BODY" --inflight "$inflight" --per "$per" --pgid "$(pid_of "$t")" --timeout "$BIG_TIMEOUT" \
        --out "$j" >/dev/null || die "$t: the ${BIG_MIB} MiB run failed"
      window_close
      x=$(jq -r --argjson n "$inflight" --argjson b "$((BIG_MIB * 1048576))" \
        '((.vmhwm_kib - .rss_base_kib) * 1024 / $n / $b * 100 | round) / 100' "$j")
      jq -r --arg t "$t" --arg m "$mode" --arg x "$x" --arg o "$other" '[$t, $m, .inflight, .requests, .ok, .wall_s, .mb_per_s, .req_per_s,
        .req_time_p50_s, .rss_base_kib, .vmhwm_kib, .rss_sampled_max_kib, $x, (.codes | tostring), $o] | @tsv' "$j" >>"$BIG"
      jq -r --arg t "$t" --arg m "$mode" --arg x "$x" --arg o "$other" '"  \($t | . + "          " | .[0:10]) \($m) x\(.inflight)  \(.ok)/\(.requests) ok  \(.mb_per_s) MB/s  \(.req_per_s) req/s  peak RSS (VmHWM) \(.vmhwm_kib / 1024 | round) MiB  sampled max \(.rss_sampled_max_kib / 1024 | round) MiB  before \(.rss_base_kib / 1024 | round) MiB  (peak-before)/in-flight = \($x)x body  other=\($o)%"' "$j"
    done
  done
fi

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
{
  if has_part 2k; then
    echo
    echo "### 2 KB verified webhooks (wrk -t$WRK_THREADS -c$CONNS -d$DURATION, median of $REPEATS; upstream + proxy on cpu $SERVER_CPUS, wrk on cpu $LOAD_CPUS)"
    echo
    awk -F'\t' -v goal=1.1 '
      function median(s,    n, i, j, tmp, a) {
        n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
        if (n == 0) return -1
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      NR > 1 { rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $6; err[$1] += $7; if ($10 + 0 > oth[$1]) oth[$1] = $10 + 0 }
      END {
        print "| target | req/s | p50 µs | p99 µs | errors | other load % (max) |"
        print "|---|---:|---:|---:|---:|---:|"
        split("nginx fleetgate fleetgate-nospool", T, " ")
        label["nginx"] = "nginx (proxy only, no verification)"; label["fleetgate"] = "fleetgate (verify + replay check + forward)"
        label["fleetgate-nospool"] = "fleetgate, spool off"
        for (k = 1; k <= 3; k++) { t = T[k]; r[t] = median(rps[t])
          printf "| %s | %.0f | %d | %d | %d | %d |\n", label[t], r[t], median(p50[t]), median(p99[t]), err[t], oth[t] }
        print ""
        if (r["nginx"] > 0 && r["fleetgate"] > 0) {
          ratio = r["fleetgate"] / r["nginx"]
          printf "fleetgate / nginx req/s = **%.2fx** (goal: >= %.1fx nginx) — %s\n", ratio, goal, (ratio >= goal ? "goal met" : "goal NOT met")
          printf "fleetgate / nginx p99   = %.2fx\n", median(p99["fleetgate"]) / (median(p99["nginx"]) > 0 ? median(p99["nginx"]) : 1)
        }
        if (r["fleetgate-nospool"] > 0 && r["fleetgate"] > 0) {
          ratio = r["fleetgate"] / r["fleetgate-nospool"]
          printf "happy path with the spool on / off req/s = **%.3fx** (goal: within 5 %%) — %s\n", ratio, (ratio >= 0.95 ? "goal met" : "goal NOT met")
        }
      }' "$RESULTS"
    echo
    echo "Each request is a distinct delivery ($N_BODIES signed 2 KB bodies, fresh X-Timestamp per run); the"
    echo "fleetgate route has duplicates.capacity: 1, so this measures verify + forward, not the replay cache."
  fi
  if has_part spool && [[ -f $SPOOLED ]]; then
    echo
    echo "### The spool: 2 KB verified webhooks with the upstream stopped (wrk -t$WRK_THREADS -c$CONNS -d$SPOOL_DURATION), then its drain"
    echo
    echo "| into the spool webhooks/s | p99 µs | non-2xx | queued | drain s | drain webhooks/s |"
    echo "|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'NR > 1 { printf "| %.0f | %d | %d | %d | %.1f | %.0f |\n", $1, $2, $3, $4, $5, $6 }' "$SPOOLED"
  fi
  if has_part big; then
    echo
    echo "### ${BIG_MIB} MiB signed webhooks (curl; seq: $BIG_SEQ one after another; conc: $BIG_INFLIGHT in flight x $BIG_PER each)"
    echo
    echo "| target | mode | ok/requests | MB/s | req/s | peak RSS (VmHWM) MiB | sampled max VmRSS MiB | RSS before MiB | (peak − before) / in-flight / body | other load % |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s x%d | %d/%d | %.1f | %.2f | %.0f | %.0f | %.0f | %.2fx | %d |\n", $1, $2, $3, $5, $4, $7, $8, $11 / 1024, $12 / 1024, $10 / 1024, $13, $15 }' "$BIG"
    echo
    echo "MB = 10^6 bytes. Goal: fleetgate peak RSS <= 2x the body per in-flight request; it buffers a webhook"
    echo "body to verify it before forwarding, so ~1x is expected. nginx (proxy_request_buffering"
    echo "$NGINX_REQUEST_BUFFERING) spools bodies over 16k to a temp file on disk, so its RSS stays small; it verifies nothing."
  fi
  echo
  sed 's/^/    /' "$CHECKS"
} | tee "$SUMMARY"
echo
echo "results: $OUT"
