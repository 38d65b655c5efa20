#!/usr/bin/env bash
# Runs the issue-2 benchmark scenarios against a release build of spoor on this machine and
# prints one line per scenario: the load generator's JSON plus server CPU-seconds and RSS.
#
#   bench/run.sh                 # all scenarios
#   bench/run.sh throughput      # one of: throughput latency idle (and idle10k, dom)
#   DURATION=30 bench/run.sh     # longer runs
#
# Extra settings for the server can be passed as TOML in SPOOR_BENCH_TOML (other tables) and
# SPOOR_BENCH_LIMITS (keys of [limits]), e.g.
#   SPOOR_BENCH_TOML=$'[pipeline]\ngroup_commit = false' bench/run.sh throughput
#   SPOOR_BENCH_LIMITS='ws_read_buffer_bytes = 4096' bench/run.sh idle
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15}
PORT=${PORT:-18080}
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -n "${SPOOR_BIN:-}" ] || cargo build --release --quiet
. bench/lib.sh

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

start_server() {
  rm -rf "$work/data"
  bench_config "${SPOOR_BENCH_LIMITS:-}
${SPOOR_BENCH_TOML:-}"
  serve_spoor "$BIN"
}

stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }

# CPU seconds (user+system) of a process.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
peak_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }

run() { # name, bench flags...
  local name=$1; shift
  start_server
  local cpu0 rss0 out cpu1 rss1
  cpu0=$(cpu_s "$server"); rss0=$(rss_kb "$server")
  out=$("$BIN" bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration "$DURATION" "$@" | tail -n 1)
  cpu1=$(cpu_s "$server"); rss1=$(peak_kb "$server")
  stop_server
  python3 - "$name" "$out" "$cpu0" "$cpu1" "$rss0" "$rss1" "$*" <<'PY'
import json, sys
name, out, cpu0, cpu1, rss0, rss1, flags = sys.argv[1:]
r = json.loads(out)
cpu = float(cpu1) - float(cpu0)
ev = r["acked_events"]
r["scenario"] = name
r["flags"] = flags
r["server_cpu_s"] = round(cpu, 2)
r["server_cpu_s_per_M_events"] = round(cpu / ev * 1e6, 3) if ev else None
r["server_rss_kb_before"] = int(rss0)
r["server_rss_kb_peak"] = int(rss1)
if r["connections"]:
    r["rss_kb_per_session"] = round((int(rss1) - int(rss0)) / r["connections"], 2)
print(json.dumps(r))
PY
}

want=${1:-all}
case $want in all|throughput) run throughput --connections 100 --batch-events 50 --interval-ms 0 ;; esac
case $want in all|latency) run latency --connections 500 --batch-events 20 --interval-ms 100 ;; esac
case $want in all|idle) run idle --connections 5000 --idle ;; esac
case $want in idle10k) run idle10k --connections 10000 --idle ;; esac
# Full-page replay in the mix: each 50-event batch carries one 2,000-byte kind-11 row.
case $want in dom) run dom --connections 100 --batch-events 50 --interval-ms 0 --dom-bytes 2000 ;; esac
