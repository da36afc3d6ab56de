# lib-run.sh — sourced by proxy-bench.sh and webhook-bench.sh: what both do to run a benchmark.
# Tools and builds, the processes they start (each in its own process group, stopped on exit), wrk
# runs measured against other load on the machine (lib-quiet.sh, sourced here), wrk's RESULT line.
# The caller sets first: HERE (bench/), REPO, and the knobs these functions read: PIN (1: pin to
# cpus), START_TIMEOUT, BUILD, FLEETGATE_BIN, UPSTREAM_BIN, WRK_THREADS, CONNS, LOAD_CPUS,
# WAIT_QUIET, QUIET_MAX, OTHER_MAX, RETRY_NOISY, and, once created (setup_out), OUT and RUN.
# BENCH_NAME (optional) prefixes die's messages.

# shellcheck source=lib-quiet.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-quiet.sh"

die() { echo "${BENCH_NAME:+$BENCH_NAME: }$*" >&2; exit 1; }

to_secs() { # wrk duration (10, 10s, 2m, 1h) -> seconds
  local d=$1
  case $d in
    *h) echo $((${d%h} * 3600)) ;; *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;;
  esac
}

count_cpus() { # "0" -> 1, "0,1" -> 2, "0-3" -> 4
  local n=0 part a b parts
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then a=${part%-*}; b=${part#*-}; n=$((n + b - a + 1)); else n=$((n + 1)); fi
  done
  echo "$n"
}

# ---------------------------------------------------------------- tools and builds
declare -A PKG_OF=([wrk]=wrk [nginx]=nginx-light [taskset]=util-linux [setsid]=util-linux [curl]=curl
  [jq]=jq [openssl]=openssl [ss]=iproute2 [awk]=gawk [timeout]=coreutils [python3]=python3)
ensure_tools() { # tool...: apt-get install the packages of the missing ones (as root), else exit
  local tool missing_pkgs=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing_pkgs+=("${PKG_OF[$tool]}"); done
  if [[ ${#missing_pkgs[@]} -eq 0 ]]; then return 0; fi
  mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)
  [[ $(id -u) == 0 ]] || die "missing packages: ${missing_pkgs[*]} — run as root, or: apt-get install -y ${missing_pkgs[*]}"
  echo "installing missing packages: ${missing_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing_pkgs[@]}" >&2 ||
    { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing_pkgs[@]}" >&2; }
  for tool in "$@"; do command -v "$tool" >/dev/null || die "still missing: $tool"; done
}

build_upstream() { # bench-upstream (UPSTREAM_BIN), when missing
  if [[ -x $UPSTREAM_BIN ]]; then return 0; fi
  command -v cargo >/dev/null || die "cargo not found: needed to build bench-upstream"
  echo "building bench-upstream ($UPSTREAM_BIN)..." >&2
  (cd "$HERE/upstream" && cargo build --release -q)
}

build_fleetgate() { # FLEETGATE_BIN: BUILD=1 always builds, auto only when it is missing, 0 never
  if [[ $BUILD == 1 || ($BUILD == auto && ! -x $FLEETGATE_BIN) ]]; then
    command -v cargo >/dev/null || die "cargo not found: needed to build fleetgate"
    echo "building fleetgate (cargo build --release in $REPO)..." >&2
    (cd "$REPO" && cargo build --release) || die "fleetgate build failed"
  fi
  [[ -x $FLEETGATE_BIN ]] || die "no fleetgate binary at $FLEETGATE_BIN (BUILD=$BUILD; set FLEETGATE_BIN or BUILD=1)"
}

setup_out() { # default-dir: OUT (the env's OUT wins) and RUN=$OUT/run, created with run/nginx-tmp and raw/
  OUT=$(realpath -m "${OUT:-$1}")
  RUN=$OUT/run
  mkdir -p "$RUN/nginx-tmp" "$OUT/raw"
}

# ---------------------------------------------------------------- processes we start
# Each is started with setsid, so its PID is also its process-group id: signalling -PID reaches
# nginx's workers too, and nothing we did not start.
PIDS=() PNAMES=() PSIGS=()
start_proc() { # name cpus stop-signal cmd...: pinned to cpus when PIN=1; log $RUN/name.log (appended: a restart keeps one log)
  local name=$1 cpus=$2 sig=$3
  shift 3
  if [[ $PIN == 1 ]]; then
    setsid taskset -c "$cpus" "$@" >>"$RUN/$name.log" 2>&1 &
  else
    setsid "$@" >>"$RUN/$name.log" 2>&1 &
  fi
  PIDS+=("$!") PNAMES+=("$name") PSIGS+=("$sig")
}

pid_of() { local i; for i in "${!PNAMES[@]}"; do [[ ${PNAMES[$i]} == "$1" ]] && { echo "${PIDS[$i]}"; return 0; }; done; return 1; }

stop_proc() { # name: stop one of ours (its process group), wait for it, forget it
  local i pid n
  for i in "${!PNAMES[@]}"; do
    [[ ${PNAMES[$i]} == "$1" ]] || continue
    pid=${PIDS[$i]}
    kill "-${PSIGS[$i]}" -- "-$pid" 2>/dev/null || kill "-${PSIGS[$i]}" "$pid" 2>/dev/null || true
    for n in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$i]" "PNAMES[$i]" "PSIGS[$i]"
    PIDS=("${PIDS[@]}") PNAMES=("${PNAMES[@]}") PSIGS=("${PSIGS[@]}")
    return 0
  done
}

stop_all() { # all of ours: their stop signal, up to 2 s for a clean exit, then SIGKILL
  local i pid n alive
  for i in "${!PIDS[@]}"; do
    kill "-${PSIGS[$i]}" -- "-${PIDS[$i]}" 2>/dev/null || kill "-${PSIGS[$i]}" "${PIDS[$i]}" 2>/dev/null || true
  done
  for n in $(seq 1 20); do
    alive=0
    for pid in "${PIDS[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; break; fi; done
    ((alive)) || break
    sleep 0.1
  done
  for i in "${!PIDS[@]}"; do
    pid=${PIDS[$i]}
    if kill -0 "$pid" 2>/dev/null; then
      echo "  ${PNAMES[$i]} (pid $pid) still alive, SIGKILL" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  if [[ ${#PIDS[@]} -gt 0 ]]; then echo "stopped ${#PIDS[@]} processes: ${PNAMES[*]}" >&2; fi
  PIDS=() PNAMES=() PSIGS=()
}

wait_port() { # port name: until the port accepts connections; exit (with its log) if it does not
  local i pid
  pid=$(pid_of "$2" || true)
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "$2 exited before opening port $1; log ($RUN/$2.log):" >&2
      tail -20 "$RUN/$2.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "$2 did not open port $1 within ${START_TIMEOUT}s; log ($RUN/$2.log):" >&2
  tail -20 "$RUN/$2.log" >&2 || true
  exit 1
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
# waits until a stopped server's port is free again (a restart must not race the old listener)
wait_port_free() { local i; for ((i = 0; i < 50; i++)); do port_busy "$1" || return 0; sleep 0.1; done; die "port $1 still busy after stopping its server"; }

refuse_busy_ports() { # "what to do" port...: if one is already taken (by someone else), say by whom and die
  local p busy=()
  for p in "${@:2}"; do if port_busy "$p"; then busy+=("$p"); fi; done
  if [[ ${#busy[@]} -eq 0 ]]; then return 0; fi
  echo "ports already in use (by someone else): ${busy[*]}" >&2
  for p in "${busy[@]}"; do ss -Hltnp "sport = :$p" >&2 || true; done
  die "$1"
}

# ---------------------------------------------------------------- meta.txt
idle_check() { # machine load over 2 s, nothing of ours running yet -> IDLE_CPU, QUIET=no when a core is above QUIET_MAX %
  local before v
  before=$(cpu_snapshot); sleep 2
  IDLE_CPU=$(cpu_busy "$before" "$(cpu_snapshot)")
  QUIET=yes
  for v in $IDLE_CPU; do
    if [[ ${v#*=} =~ ^([0-9]+)%$ ]] && ((BASH_REMATCH[1] > QUIET_MAX)); then QUIET=no; fi
  done
}
meta_host() { # the date: and host: lines
  echo "date: $(date -Is)"
  echo "host: $(uname -srm); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
}
meta_idle() { echo "idle load before the run (2 s): $IDLE_CPU$( [[ $QUIET == no ]] && echo " — WARNING: the machine is busy with something else, numbers will be skewed")"; }
wrk_version() { { wrk --version 2>&1 || true; } | head -1; }
fleetgate_built() { # "built <binary's mtime>; git <HEAD>[, src dirty]"
  echo "built $(date -r "$FLEETGATE_BIN" -Is); git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$( [[ -n $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] && echo ', src dirty')"
}

# ---------------------------------------------------------------- wrk runs, measured
# wrk_run script url duration outfile: wrk with lua/script.lua, on LOAD_CPUS when PIN=1. wrk stops by
# itself after the duration; `timeout` (WRK_SLACK s later) is only the safety net should it hang.
# The script's inputs come from the caller's environment: `WRK_BODY=... wrk_run post ...`.
WRK_SLACK=30
wrk_run() {
  local cmd
  cmd=(timeout -k 5 "$(($(to_secs "$3") + WRK_SLACK))" wrk "-t$WRK_THREADS" "-c$CONNS" "-d$3" -s "$HERE/lua/$1.lua" "$2")
  if [[ $PIN == 1 ]]; then cmd=(taskset -c "$LOAD_CPUS" "${cmd[@]}"); fi
  "${cmd[@]}" >"$4" 2>&1 || true
}

# Other load on the machine during a run: machine-wide busy ticks minus the ticks of our own
# processes (every process group we started, plus the children this shell reaped: wrk, curl, ...).
# window_open; <the run>; window_close -> cpu ("cpu0=97% cpu1=55% ") and other (% of the machine used
# by others). Call both directly, never inside $(...) (child_ticks).
window_open() {
  child_ticks "$RUN/c0"; W_CPU0=$(cpu_snapshot); W_T0=$(total_ticks); W_O0=$(our_ticks "${PIDS[@]}")
}
window_close() {
  local t1 o1
  cpu=$(cpu_busy "$W_CPU0" "$(cpu_snapshot)"); t1=$(total_ticks); o1=$(our_ticks "${PIDS[@]}"); child_ticks "$RUN/c1"
  other=$(other_pct "$W_T0" "$t1" "$W_O0" "$o1" "$(<"$RUN/c0")" "$(<"$RUN/c1")")
}

# measure label prep cmd...: one measured run of cmd. Before it: wait for a quiet machine when
# WAIT_QUIET > 0, then prep (untimed; `:` for nothing). A run where others used more than OTHER_MAX %
# of the machine is measured again, up to RETRY_NOISY times. Sets cpu and other (last attempt).
measure() {
  local label=$1 prep=$2 attempt
  shift 2
  for attempt in $(seq 0 "$RETRY_NOISY"); do
    if ((WAIT_QUIET > 0)); then wait_quiet "$WAIT_QUIET" "$QUIET_MAX"; fi
    $prep
    window_open
    "$@"
    window_close
    if ((other <= OTHER_MAX)); then break; fi
    if ((attempt < RETRY_NOISY)); then echo "  $label: other load ${other}% > ${OTHER_MAX}%, measuring again"; fi
  done
}

# read_result file label: wrk's RESULT line (lua/result.lua) -> r_<key> variables and errs (all error
# counts summed); without one, prints "  label: no result (see file)" and returns 1.
read_result() {
  local line
  line=$(grep '^RESULT' "$1" || true)
  if [[ -z $line ]]; then echo "  $2: no result (see $1)"; return 1; fi
  eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/r_/')"
  errs=$((r_err_connect + r_err_read + r_err_write + r_err_status + r_err_timeout))
}
