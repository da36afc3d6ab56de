#!/usr/bin/env bash
# proxy-bench.sh — fleetgate next to nginx, HAProxy and bare proxies: HTTP reverse-proxy benchmark.
#
# Adapted from the shared harness (shared/bench/proxy-bench.sh); the candidate is fleetgate
# (bench/fleetgate-candidate.sh). Reference targets: nginx, haproxy, `pingora`
# (examples/bare_pingora.rs: pingora's ProxyHttp with no logic), `hyper` (examples/bare_hyper.rs:
# a bare hyper proxy with a per-thread pool), and the two anchors of shared/bench/anchors,
# `anchor-proxy` (hyper-util's pooled client) and `anchor-lean` (per-thread http1 senders), built
# from a scratch copy in bench/.anchors/ (shared/ is read-only). Starts 4 upstream instances
# (bench-upstream on 127.0.0.1:3001-3004, one thread each, like one Node process each), nginx and
# fleetgate, each routing by the X-Workspace-Id header, then runs the same wrk load against:
# direct (u1 only, no proxy), nginx and fleetgate. Prints requests/s and p99 (medians of REPEATS
# runs) side by side with the ratios vs nginx. Everything listens on 127.0.0.1 only, every run is
# bounded by DURATION, and every process started here is stopped on exit (also on Ctrl-C).
#
# Usage:   bench/proxy-bench.sh                          # defaults below
#          TARGETS="direct nginx" REPEATS=1 DURATION=3s bench/proxy-bench.sh
# Knobs (env):
#   TARGETS="direct nginx fleetgate"   any subset of direct nginx haproxy pingora hyper anchor-proxy
#                    anchor-lean fleetgate fleetgate-log (access log on), in this order of measurement
#   DURATION=10s WARMUP=2s CONNS=64 REPEATS=3 VARIANTS="get post"
#                    a variant `X-slowloris` is X measured while bench/slowloris.py holds
#                    ATTACK_CONNS (2000) connections that send a request head one byte per second
#                    (started ATTACK_LEAD=3 s before wrk): the p99 of normal traffic under that
#                    attack, and when each server closed the attacker's connections (attacks.txt;
#                    nginx runs with client_header_timeout 10s, fleetgate's header_timeout default)
#   ROUTE=map|hash   map: fixed table workspace N -> u((N mod 4)+1), unknown/missing -> u1
#                         (fleetgate: assign modulo + one pin per workspace)
#                    hash: consistent hash of the header value (fleetgate: assign rendezvous)
#   PIN=1|0          1 (default): servers (upstreams + proxy) on SERVER_CPUS, wrk on LOAD_CPUS
#                    0: nothing pinned, everything competes for both cores
#   SERVER_CPUS=0 LOAD_CPUS=1 WRK_THREADS (default: CPUs in LOAD_CPUS when PIN=1, 2 when PIN=0)
#   UPSTREAM_CPUS (default SERVER_CPUS): e.g. UPSTREAM_CPUS=1 puts the upstreams beside wrk
#                    and leaves cpu 0 to the proxy alone
#   PROXY_WORKERS    nginx workers / fleetgate `threads:`
#                    (default: number of CPUs in SERVER_CPUS when pinned, else nproc)
#   NGINX_PORT=18081 FLEETGATE_PORT=18090 (upstreams 3001-3004)
#   BUILD=auto|1|0   fleetgate: auto (default) runs `cargo build --release` at the repo root only
#                    when the binary is missing; 1 always builds first; 0 never builds
#   FLEETGATE_BIN    default <repo>/target/release/fleetgate (honours CARGO_TARGET_DIR)
#   FLEETGATE_CMD    how to start the candidate (default: bench/fleetgate-candidate.sh)
#   START_TIMEOUT=15 seconds each server gets to open its port
#   QUIET_MAX=15     warn when a core is busier than this (%) while idle before the run: other
#                    processes on the machine (e.g. a build) skew every number
#   WAIT_QUIET=0     before each measured run wait up to this many seconds for the machine to be
#                    quiet (< QUIET_MAX % busy). Each run also reports other=N%: machine-wide CPU
#                    not used by our processes (upstreams, proxies, wrk) — > OTHER_MAX (5) % is
#                    flagged; RETRY_NOISY=N measures a flagged run again up to N times
#   WEBHOOK_SECRET=bench-secret   HMAC key for the POST variant's X-Signature header
#   OUT=bench/out/<stamp>  where raw outputs, results.tsv and summary.md go
# The candidate is started as `bash -c "exec $FLEETGATE_CMD"` (pinned like nginx) with these
# variables exported, so it can configure itself from them:
#   PORT / LISTEN (127.0.0.1:$FLEETGATE_PORT), UPSTREAMS (comma list of the 4 upstreams),
#   WORKSPACE_MAP (file "N 127.0.0.1:300K" per line), ROUTE, WEBHOOK_SECRET, PROXY_WORKERS,
#   FLEETGATE_BIN, FLEETGATE_CONFIG ($OUT/run/fleetgate.yaml: the config is kept with the results).
# Like nginx here, fleetgate should keep upstream connections alive (pool), add X-Forwarded-For,
# not log each request, and answer 200 on the POST variant (proxied to the upstream as is; its
# signature is valid: X-Signature: sha256=<hex HMAC-SHA256(secret, body)>).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib-run.sh
source "$HERE/lib-run.sh"
TARGETS=${TARGETS:-"direct nginx fleetgate"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
REPEATS=${REPEATS:-3}
VARIANTS=${VARIANTS:-"get post"}
ROUTE=${ROUTE:-map}
PIN=${PIN:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
UPSTREAM_CPUS=${UPSTREAM_CPUS:-$SERVER_CPUS}
WEBHOOK_SECRET=${WEBHOOK_SECRET:-bench-secret}
NGINX_PORT=${NGINX_PORT:-18081}
FLEETGATE_PORT=${FLEETGATE_PORT:-${CANDIDATE_PORT:-18090}}
BUILD=${BUILD:-auto}
FLEETGATE_BIN=${FLEETGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/fleetgate}
FLEETGATE_CMD=${FLEETGATE_CMD:-$(printf '%q' "$HERE/fleetgate-candidate.sh")}
START_TIMEOUT=${START_TIMEOUT:-15}
QUIET_MAX=${QUIET_MAX:-15}   # % busy per core allowed before the run (other load on the machine)
WAIT_QUIET=${WAIT_QUIET:-0}  # seconds to wait, before each measured run, for other load to stop
OTHER_MAX=${OTHER_MAX:-5}    # % of the machine used by others during a run above which it is flagged
RETRY_NOISY=${RETRY_NOISY:-0} # measure a flagged run again, up to this many times
UPSTREAM_BIN=${UPSTREAM_BIN:-$HERE/upstream/target/release/bench-upstream}
# `pingora` target: examples/bare_pingora.rs, pingora's proxy with no logic (a baseline, not a product)
PINGORA_PORT=${PINGORA_PORT:-18092}
PINGORA_BIN=${PINGORA_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/examples/bare_pingora}
# `hyper` target: examples/bare_hyper.rs; anchors: shared/bench/anchors/* built in bench/.anchors/
HYPER_PORT=${HYPER_PORT:-18093}
# `fleetgate-log` target: the candidate again with its access log on (to $RUN/access.log)
FLEETGATE_LOG_PORT=${FLEETGATE_LOG_PORT:-18096}
HYPER_BIN=${HYPER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/examples/bare_hyper}
HAPROXY_PORT=${HAPROXY_PORT:-18082}
ANCHOR_PROXY_PORT=${ANCHOR_PROXY_PORT:-18094}
ANCHOR_LEAN_PORT=${ANCHOR_LEAN_PORT:-18095}
ANCHORS_SRC=${ANCHORS_SRC:-$REPO/../shared/bench/anchors}
ANCHORS_DIR=$HERE/.anchors
UPSTREAM_LIST=127.0.0.1:3001,127.0.0.1:3002,127.0.0.1:3003,127.0.0.1:3004

# anchor name (hyper-proxy | hyper-lean) -> its binary, built from a scratch copy when missing
anchor_bin() {
  local name=$1 dir=$ANCHORS_DIR/$1
  if [[ ! -x $dir/target/release/anchor-$name ]]; then
    [[ -d $ANCHORS_SRC/$name ]] || die "anchor sources not found: $ANCHORS_SRC/$name"
    rm -rf "$dir" && mkdir -p "$ANCHORS_DIR" && cp -r "$ANCHORS_SRC/$name" "$dir" && chmod -R u+w "$dir"
    (cd "$dir" && cargo build --release --quiet) >&2
  fi
  echo "$dir/target/release/anchor-$name"
}

for t in $TARGETS; do
  case $t in
    direct | nginx | haproxy | pingora | hyper | anchor-proxy | anchor-lean | fleetgate | fleetgate-log) ;;
    *) echo "unknown target '$t' (known: direct nginx haproxy pingora hyper anchor-proxy anchor-lean fleetgate fleetgate-log)" >&2; exit 2 ;;
  esac
done
ATTACK_CONNS=${ATTACK_CONNS:-2000}
ATTACK_LEAD=${ATTACK_LEAD:-3}
for v in $VARIANTS; do
  [[ -f $HERE/lua/${v%-slowloris}.lua ]] || { echo "unknown variant '$v' (known: get post, each with -slowloris)" >&2; exit 2; }
done
[[ $ROUTE == map || $ROUTE == hash ]] || { echo "ROUTE must be map or hash" >&2; exit 2; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

[[ $(to_secs "$DURATION") =~ ^[0-9]+$ && $(to_secs "$WARMUP") =~ ^[0-9]+$ ]] ||
  { echo "DURATION/WARMUP must look like 10, 10s, 2m" >&2; exit 2; }

if [[ $PIN == 1 ]]; then
  PROXY_WORKERS=${PROXY_WORKERS:-$(count_cpus "$SERVER_CPUS")}
  WRK_THREADS=${WRK_THREADS:-$(count_cpus "$LOAD_CPUS")}
else
  PROXY_WORKERS=${PROXY_WORKERS:-$(nproc)}
  WRK_THREADS=${WRK_THREADS:-2}
fi

# ---------------------------------------------------------------- tools (apt-get when missing), builds
need=(wrk setsid curl jq openssl ss awk timeout)
[[ $PIN == 1 ]] && need+=(taskset)
has_target nginx && need+=(nginx)
has_target haproxy && need+=(haproxy)
ensure_tools "${need[@]}"
build_upstream
if has_target fleetgate || has_target fleetgate-log; then build_fleetgate; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

setup_out "$HERE/out/$(date +%Y%m%d-%H%M%S)-$ROUTE-pin$PIN"

# ---------------------------------------------------------------- processes: all stopped on exit (lib-run.sh)
trap stop_all EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- generated inputs
: >"$RUN/workspaces.nginx.map"; : >"$RUN/workspaces.tsv"; : >"$RUN/workspaces.haproxy.map"
for n in $(seq 1 1000); do
  k=$((n % 4 + 1))
  echo "$n u$k;" >>"$RUN/workspaces.nginx.map"
  echo "$n be_u$k" >>"$RUN/workspaces.haproxy.map"
  echo "$n 127.0.0.1:300$k" >>"$RUN/workspaces.tsv"
done
# 2 KB webhook body (deterministic JSON) and its HMAC-SHA256 signature
BODY=$RUN/webhook-2k.json
{
  printf '{"event":"push","workspace":"bench","items":['
  for i in $(seq 1 40); do
    if [[ $i -gt 1 ]]; then printf ','; fi
    printf '{"id":%d,"name":"item-%04d","ok":true}' "$i" "$i"
  done
  printf '],"pad":"'
} >"$BODY"
pad=$((2048 - $(stat -c %s "$BODY") - 2))
head -c "$pad" /dev/zero | tr '\0' 'x' >>"$BODY"
printf '"}' >>"$BODY"
SIG=$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r "$BODY" | cut -d' ' -f1)

if [[ $ROUTE == map ]]; then NGINX_TARGET='$ws_backend'; else NGINX_TARGET='ws_hash'; fi
sed -e "s|@WORKERS@|$PROXY_WORKERS|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@RUN@|$RUN|g" \
  -e "s|@TARGET@|$NGINX_TARGET|g" "$HERE/conf/nginx.conf.tmpl" >"$RUN/nginx.conf"
if [[ $ROUTE == map ]]; then
  HAPROXY_RULE='use_backend %[req.hdr(X-Workspace-Id),map('"$RUN"'/workspaces.haproxy.map,be_u1)]'
else
  HAPROXY_RULE='default_backend be_hash'
fi
sed -e "s|@THREADS@|$PROXY_WORKERS|g" -e "s|@PORT@|$HAPROXY_PORT|g" -e "s|@RUN@|$RUN|g" \
  -e "s|@ROUTE_RULE@|$HAPROXY_RULE|g" "$HERE/conf/haproxy.cfg.tmpl" >"$RUN/haproxy.cfg"

# ---------------------------------------------------------------- pre-flight
ports=(3001 3002 3003 3004)
has_target nginx && ports+=("$NGINX_PORT")
has_target fleetgate && ports+=("$FLEETGATE_PORT")
has_target fleetgate-log && ports+=("$FLEETGATE_LOG_PORT")
has_target haproxy && ports+=("$HAPROXY_PORT")
has_target hyper && ports+=("$HYPER_PORT")
has_target anchor-proxy && ports+=("$ANCHOR_PROXY_PORT")
has_target anchor-lean && ports+=("$ANCHOR_LEAN_PORT")
refuse_busy_ports "free them or pick other ports (NGINX_PORT, FLEETGATE_PORT)" "${ports[@]}"
idle_check

# ---------------------------------------------------------------- meta
{
  meta_host
  echo "mem: $(free -g | awk '/Mem:/{print $2" GiB"}')"
  echo "knobs: DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS REPEATS=$REPEATS ROUTE=$ROUTE PIN=$PIN SERVER_CPUS=$SERVER_CPUS UPSTREAM_CPUS=$UPSTREAM_CPUS LOAD_CPUS=$LOAD_CPUS WRK_THREADS=$WRK_THREADS PROXY_WORKERS=$PROXY_WORKERS"
  echo "targets: $TARGETS"
  echo "wrk: $(wrk_version)"
  if has_target nginx; then echo "nginx: $(nginx -v 2>&1)"; fi
  if has_target haproxy; then echo "haproxy: $(haproxy -v | head -1)"; fi
  if has_target fleetgate; then
    echo "fleetgate: $FLEETGATE_BIN ($(fleetgate_built)) via $FLEETGATE_CMD (port $FLEETGATE_PORT)"
  fi
  echo "webhook body: $(stat -c %s "$BODY") bytes, X-Signature: sha256=$SIG"
  meta_idle
} >"$OUT/meta.txt"
cat "$OUT/meta.txt"

# ---------------------------------------------------------------- start servers
for k in 1 2 3 4; do
  start_proc "u$k" "$UPSTREAM_CPUS" TERM "$UPSTREAM_BIN" "300$k" "u$k" 1
done
for k in 1 2 3 4; do wait_port "300$k" "u$k"; done

declare -A PORT_OF=([direct]=3001)
for t in $TARGETS; do
  case $t in
    direct) ;;
    nginx)
      nginx -t -q -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log" 2>"$RUN/nginx-t.log" || { cat "$RUN/nginx-t.log" >&2; exit 1; }
      start_proc nginx "$SERVER_CPUS" TERM nginx -c "$RUN/nginx.conf" -e "$RUN/nginx-error.log"
      PORT_OF[nginx]=$NGINX_PORT ;;
    haproxy)
      haproxy -c -q -f "$RUN/haproxy.cfg" || exit 1
      start_proc haproxy "$SERVER_CPUS" TERM haproxy -db -f "$RUN/haproxy.cfg"
      PORT_OF[haproxy]=$HAPROXY_PORT ;;
    hyper)
      [[ -x $HYPER_BIN ]] || (cd "$REPO" && cargo build --release --example bare_hyper) >&2
      start_proc hyper "$SERVER_CPUS" TERM "$HYPER_BIN" "$HYPER_PORT"
      PORT_OF[hyper]=$HYPER_PORT ;;
    anchor-proxy)
      start_proc anchor-proxy "$SERVER_CPUS" TERM "$(anchor_bin hyper-proxy)" "127.0.0.1:$ANCHOR_PROXY_PORT" "$UPSTREAM_LIST"
      PORT_OF[anchor-proxy]=$ANCHOR_PROXY_PORT ;;
    anchor-lean)
      start_proc anchor-lean "$SERVER_CPUS" TERM "$(anchor_bin hyper-lean)" "127.0.0.1:$ANCHOR_LEAN_PORT" "$UPSTREAM_LIST"
      PORT_OF[anchor-lean]=$ANCHOR_LEAN_PORT ;;
    pingora)
      [[ -x $PINGORA_BIN ]] || (cd "$REPO" && cargo build --release --example bare_pingora) >&2
      start_proc pingora "$SERVER_CPUS" INT env --default-signal=INT "$PINGORA_BIN" "$PINGORA_PORT"
      PORT_OF[pingora]=$PINGORA_PORT ;;
    fleetgate)
      # stopped with SIGINT: pingora's fast shutdown (SIGTERM is its graceful one, which waits out a
      # long grace period). A background job starts with SIGINT ignored: --default-signal undoes that.
      start_proc fleetgate "$SERVER_CPUS" INT env --default-signal=INT PORT="$FLEETGATE_PORT" LISTEN="127.0.0.1:$FLEETGATE_PORT" \
        UPSTREAMS="127.0.0.1:3001,127.0.0.1:3002,127.0.0.1:3003,127.0.0.1:3004" \
        WORKSPACE_MAP="$RUN/workspaces.tsv" ROUTE="$ROUTE" WEBHOOK_SECRET="$WEBHOOK_SECRET" \
        PROXY_WORKERS="$PROXY_WORKERS" FLEETGATE_BIN="$FLEETGATE_BIN" FLEETGATE_CONFIG="$RUN/fleetgate.yaml" \
        bash -c "exec $FLEETGATE_CMD"
      PORT_OF[fleetgate]=$FLEETGATE_PORT ;;
    fleetgate-log)
      # The same candidate with its JSON access log on, to a file: the log's cost in the same run.
      start_proc fleetgate-log "$SERVER_CPUS" INT env --default-signal=INT PORT="$FLEETGATE_LOG_PORT" LISTEN="127.0.0.1:$FLEETGATE_LOG_PORT" \
        UPSTREAMS="127.0.0.1:3001,127.0.0.1:3002,127.0.0.1:3003,127.0.0.1:3004" \
        WORKSPACE_MAP="$RUN/workspaces.tsv" ROUTE="$ROUTE" WEBHOOK_SECRET="$WEBHOOK_SECRET" \
        PROXY_WORKERS="$PROXY_WORKERS" FLEETGATE_BIN="$FLEETGATE_BIN" FLEETGATE_CONFIG="$RUN/fleetgate-log.yaml" \
        ACCESS_LOG="$RUN/access.log" bash -c "exec $FLEETGATE_CMD"
      PORT_OF[fleetgate-log]=$FLEETGATE_LOG_PORT ;;
  esac
done
for t in $TARGETS; do [[ $t == direct ]] || wait_port "${PORT_OF[$t]}" "$t"; done

# ---------------------------------------------------------------- routing sanity check
CHECKS=$OUT/checks.txt
echo
echo "routing check (ids 1..40, twice each; ROUTE=$ROUTE):" | tee "$CHECKS"
for t in $TARGETS; do
  [[ $t == direct ]] && continue
  port=${PORT_OF[$t]}
  declare -A seen=()
  bad=0 wrong=0 distinct=0
  for pass in 1 2; do
    for id in $(seq 1 40); do
      inst=$(curl -s -m 2 -H "X-Workspace-Id: $id" "http://127.0.0.1:$port/api/v1/status" | jq -r .instance 2>/dev/null || echo ERR)
      if [[ -z $inst || $inst == ERR || $inst == null ]]; then bad=$((bad + 1)); continue; fi
      if [[ -n ${seen[$id]:-} && ${seen[$id]} != "$inst" ]]; then bad=$((bad + 1)); fi
      seen[$id]=$inst
      if [[ $ROUTE == map && $inst != "u$((id % 4 + 1))" ]]; then wrong=$((wrong + 1)); fi
    done
  done
  distinct=$( ((${#seen[@]} > 0)) && printf '%s\n' "${seen[@]}" | sort -u | grep -c . || echo 0)
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST -H 'Content-Type: application/json' \
    -H 'X-Workspace-Id: 7' -H "X-Signature: sha256=$SIG" --data-binary "@$BODY" "http://127.0.0.1:$port/webhooks/ingest" || true)
  verdict=ok
  if ((bad > 0 || wrong > 0 || distinct < 2)) || [[ $code != 200 ]]; then verdict="FAILED: its numbers are not comparable"; fi
  printf '  %-10s instances=%d inconsistent/failed=%d table-mismatch=%d post=%s  %s\n' "$t" "$distinct" "$bad" "$wrong" "$code" "$verdict" | tee -a "$CHECKS"
  unset seen
done

# ---------------------------------------------------------------- load
# measured with lib-run.sh's measure: other=N% is the machine's CPU not used by our processes
run_wrk() { WRK_BODY=$BODY WRK_SIG=$SIG wrk_run "${1%-slowloris}" "${@:2}"; } # variant url duration outfile
ATTACKS=$OUT/attacks.txt
# attack variant target rep: for an `X-slowloris` variant, starts the attacker (on the load CPUs)
# for the lead time + the run + 4 s, and waits out the lead time so its connections are open.
attack() {
  [[ $1 == *-slowloris ]] || return 0
  local secs=$((ATTACK_LEAD + $(to_secs "$DURATION") + 4))
  local cmd=(python3 "$HERE/slowloris.py" "${PORT_OF[$2]}" "$ATTACK_CONNS" "$secs")
  if [[ $PIN == 1 ]]; then cmd=(taskset -c "$LOAD_CPUS" "${cmd[@]}"); fi
  { printf '%-10s #%s  ' "$2" "$3"; "${cmd[@]}"; } >>"$ATTACKS" 2>&1 &
  ATTACKER=$!
  sleep "$ATTACK_LEAD"
}
attack_done() { if [[ -n ${ATTACKER:-} ]]; then wait "$ATTACKER" || true; ATTACKER=; tail -n 1 "$ATTACKS"; fi; }

RESULTS=$OUT/results.tsv
printf 'variant\ttarget\trep\trps\tp50_us\tp90_us\tp99_us\tp999_us\terrors\tcpu\tother_load_pct\n' >"$RESULTS"
echo
echo "wrk: -t$WRK_THREADS -c$CONNS -d$DURATION ($( [[ $PIN == 1 ]] && echo "wrk on cpu $LOAD_CPUS, proxy on cpu $SERVER_CPUS, upstreams on cpu $UPSTREAM_CPUS" || echo unpinned))"
for variant in $VARIANTS; do
  for t in $TARGETS; do # warm-up: fills keep-alive pools, page cache
    run_wrk "$variant" "http://127.0.0.1:${PORT_OF[$t]}/" "$WARMUP" "$OUT/raw/$variant-$t-warmup.txt"
  done
  for rep in $(seq 1 "$REPEATS"); do # round-robin over targets so drift hits all alike
    for t in $TARGETS; do
      f=$OUT/raw/$variant-$t-$rep.txt
      [[ $t == direct && $variant == *-slowloris ]] && continue # the upstream has no header deadline
      attack "$variant" "$t" "$rep"
      measure "$variant $t #$rep" : run_wrk "$variant" "http://127.0.0.1:${PORT_OF[$t]}/" "$DURATION" "$f"
      attack_done
      read_result "$f" "$variant $t #$rep" || continue
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$t" "$rep" "$r_rps" "$r_p50_us" "$r_p90_us" \
        "$r_p99_us" "$r_p999_us" "$errs" "$cpu" "$other" >>"$RESULTS"
      printf '  %-4s %-10s #%d  %9.0f req/s  p50 %6d us  p99 %6d us  errors %d  %s other=%d%%%s\n' "$variant" "$t" "$rep" \
        "$r_rps" "$r_p50_us" "$r_p99_us" "$errs" "$cpu" "$other" "$( ((other > OTHER_MAX)) && echo '  <- other load on the machine')"
    done
  done
done

# ---------------------------------------------------------------- summary (medians)
SUMMARY=$OUT/summary.md
OVERHEAD_COL=0 # proxy CPU µs/req only means something when proxy + upstreams share the saturated core(s)
if [[ $PIN == 1 && $UPSTREAM_CPUS == "$SERVER_CPUS" ]]; then OVERHEAD_COL=1; fi
{
  echo
  echo "### ROUTE=$ROUTE PIN=$PIN$( [[ $UPSTREAM_CPUS != "$SERVER_CPUS" ]] && echo " UPSTREAM_CPUS=$UPSTREAM_CPUS")  (wrk -t$WRK_THREADS -c$CONNS -d$DURATION, median of $REPEATS)"
  echo
  awk -F'\t' -v pin="$OVERHEAD_COL" -v order="$TARGETS" -v variants="$VARIANTS" '
    function median(key,    n, i, j, tmp, a) {
      n = split(vals[key], a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
      if (n == 0) return -1
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ratio(x, ref) { return (ref > 0 && x >= 0) ? sprintf("%.2f", x / ref) : "-" }
    NR > 1 {
      k = $1 SUBSEP $2
      vals[k SUBSEP "rps"] = vals[k SUBSEP "rps"] " " $4
      vals[k SUBSEP "p50"] = vals[k SUBSEP "p50"] " " $5
      vals[k SUBSEP "p99"] = vals[k SUBSEP "p99"] " " $7
      err[k] += $9
      if ($11 + 0 > oth[k] + 0) oth[k] = $11 + 0
    }
    END {
      nv = split(variants, V, " "); nt = split(order, T, " ")
      # 1) side by side: one row per target, each variant as req/s, p99 and both ratios vs nginx
      hdr = "| target |"; sep = "|---|"
      for (v = 1; v <= nv; v++) {
        hdr = hdr sprintf(" %s req/s | %s p99 µs | %s req/s vs nginx | %s p99 vs nginx |", V[v], V[v], V[v], V[v])
        sep = sep "---:|---:|---:|---:|"
      }
      print hdr; print sep
      for (t = 1; t <= nt; t++) {
        line = "| " T[t] " |"
        for (v = 1; v <= nv; v++) {
          k = V[v] SUBSEP T[t]
          rps = median(k SUBSEP "rps"); p99 = median(k SUBSEP "p99")
          nrps = median(V[v] SUBSEP "nginx" SUBSEP "rps"); np99 = median(V[v] SUBSEP "nginx" SUBSEP "p99")
          if (rps < 0) line = line " - | - | - | - |"
          else line = line sprintf(" %.0f | %d | %s | %s |", rps, p99, ratio(rps, nrps), ratio(p99, np99))
        }
        print line
      }
      print ""
      # 1b) a slowloris variant next to its clean one: p99 under the attack / p99 without
      for (v = 1; v <= nv; v++) {
        if (V[v] !~ /-slowloris$/) continue
        base = V[v]; sub(/-slowloris$/, "", base)
        print "| target | " base " p99 µs | under slowloris p99 µs | ratio | req/s ratio |"
        print "|---|---:|---:|---:|---:|"
        for (t = 1; t <= nt; t++) {
          p0 = median(base SUBSEP T[t] SUBSEP "p99"); p1 = median(V[v] SUBSEP T[t] SUBSEP "p99")
          r0 = median(base SUBSEP T[t] SUBSEP "rps"); r1 = median(V[v] SUBSEP T[t] SUBSEP "rps")
          if (p0 < 0 || p1 < 0) continue
          printf "| %s | %d | %d | %s | %s |\n", T[t], p0, p1, ratio(p1, p0), ratio(r1, r0)
        }
        print ""
      }
      # 2) detail: one row per variant x target
      if (pin == 1) {
        print "| variant | target | req/s | p50 µs | p99 µs | errors | req/s vs nginx | p99 vs nginx | proxy CPU µs/req* | other load % (max) |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
      } else {
        print "| variant | target | req/s | p50 µs | p99 µs | errors | req/s vs nginx | p99 vs nginx | other load % (max) |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
      }
      for (v = 1; v <= nv; v++) {
        nrps = median(V[v] SUBSEP "nginx" SUBSEP "rps"); np99 = median(V[v] SUBSEP "nginx" SUBSEP "p99")
        drps = median(V[v] SUBSEP "direct" SUBSEP "rps")
        for (t = 1; t <= nt; t++) {
          k = V[v] SUBSEP T[t]
          rps = median(k SUBSEP "rps"); p50 = median(k SUBSEP "p50"); p99 = median(k SUBSEP "p99")
          if (rps < 0) continue
          line = sprintf("| %s | %s | %.0f | %d | %d | %d | %s | %s |", V[v], T[t], rps, p50, p99, err[k], ratio(rps, nrps), ratio(p99, np99))
          if (pin == 1) {
            ov = (T[t] != "direct" && drps > 0 && rps > 0) ? sprintf("%.1f", 1e6 / rps - 1e6 / drps) : "-"
            line = line " " ov " |"
          }
          print line " " (oth[k] + 0) " |"
        }
      }
    }' "$RESULTS"
  if [[ $OVERHEAD_COL == 1 ]]; then
    echo
    echo "\\* proxy CPU µs/req = 1e6/rps(target) − 1e6/rps(direct): valid while the server core is saturated"
    echo "(cpu$SERVER_CPUS ≈ 100% busy in results.tsv); proxy and upstreams share that core."
  fi
  echo
  sed 's/^/    /' "$CHECKS"
  if [[ -f $ATTACKS ]]; then
    echo
    echo "slowloris attacker ($ATTACK_CONNS connections, one header byte per second):"
    sed 's/^/    /' "$ATTACKS"
  fi
} | tee "$SUMMARY"
echo
echo "raw outputs: $OUT"
