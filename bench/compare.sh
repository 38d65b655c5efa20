#!/usr/bin/env bash
# spoor side by side with its peers, on this machine, in one run. For each scenario, each
# server is started fresh and loaded by `spoor bench` with identical settings, in turn
# (ROUNDS times, alternating), and one table is printed: acked events/s, server CPU-seconds
# per million events, ack latency p50/p99/p99.9, peak RSS.
#
# Peers:
#   spoor          the real thing: validated, group-committed, fsynced before the ack
#   spoor-1by1     spoor with group commit off (one durable transaction per batch)
#   node-ws        a Node `ws` server that decodes each batch and acks at once, storing nothing
#   bare           tokio-tungstenite acking by count: no decoding, no storing (the ceiling)
#   bare-durable   bare, plus a log: each group's bytes appended with one write and one
#                  fdatasync before its acks, grouped as spoor groups, by a writer thread
#   bare-inline    bare-durable on one thread that writes and syncs each group itself (no
#                  thread wakes another: the floor of durability at light loads)
#   spoor-base     another spoor binary, $SPOOR_BASE (say, the last release), for before/after
#
# Scenarios: max (100 sessions as fast as acks allow), half, steady (500 sessions × 20 events
# every 100 ms, spread evenly over the interval), pulsed (the same, in the pulses of sessions
# that connected together: `spoor bench --aligned`), curve (100 to 10,000 sessions).
#
#   bench/compare.sh                      # max half steady curve, all peers, one round
#   ROUNDS=3 DURATION=10 bench/compare.sh max
#   PEERS="spoor bare" bench/compare.sh curve
#   SPOOR_BASE=/tmp/spoor-old PEERS="spoor spoor-base node-ws bare" bench/compare.sh "max steady"
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-1}
PEERS=${PEERS:-"spoor spoor-1by1 node-ws bare"}
PORT=18080
KEY=wk_bench_key_0001
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin spoor --example bare_ack --example bare_durable
(cd bench/peers/node-ws && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
. bench/lib.sh

bench_scratch
results="$work/results.jsonl"

start() { # peer
  rm -rf "$work/data"
  local extra=""
  [ "$1" = spoor-1by1 ] && extra=$'[pipeline]\ngroup_commit = false'
  bench_config "$extra"
  case $1 in
    spoor|spoor-1by1) RUST_LOG=warn target/release/spoor serve --config "$work/spoor.toml" >"$work/server.log" 2>&1 & ;;
    spoor-base) RUST_LOG=warn "${SPOOR_BASE:?set SPOOR_BASE to a spoor binary}" serve --config "$work/spoor.toml" >"$work/server.log" 2>&1 & ;;
    node-ws) node bench/peers/node-ws/server.mjs "127.0.0.1:$PORT" >"$work/server.log" 2>&1 & ;;
    bare) target/release/examples/bare_ack "127.0.0.1:$PORT" >"$work/server.log" 2>&1 & ;;
    bare-durable) target/release/examples/bare_durable "127.0.0.1:$PORT" "$work/data" >"$work/server.log" 2>&1 & ;;
    bare-inline) target/release/examples/bare_durable "127.0.0.1:$PORT" "$work/data" 2000 inline >"$work/server.log" 2>&1 & ;;
  esac
  server=$!
  wait_port
}

stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
peak_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

run() { # scenario peer bench-flags...
  local scenario=$1 peer=$2; shift 2
  start "$peer"
  local cpu0 rss0 out cpu1 peak
  cpu0=$(cpu_s "$server"); rss0=$(rss_kb "$server")
  out=$(target/release/spoor bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration "$DURATION" "$@" | tail -n 1)
  cpu1=$(cpu_s "$server"); peak=$(peak_kb "$server")
  stop
  python3 - "$scenario" "$peer" "$out" "$cpu0" "$cpu1" "$rss0" "$peak" >>"$results" <<'PY'
import json, sys
scenario, peer, out, cpu0, cpu1, rss0, peak = sys.argv[1:]
r = json.loads(out)
r.update(scenario=scenario, peer=peer, cpu_s=float(cpu1) - float(cpu0), rss0_kb=int(rss0), peak_kb=int(peak))
print(json.dumps(r))
PY
  tail -n 1 "$results" >&2
}

scenarios=${1:-"max half steady curve"}
for s in $scenarios; do
  for _ in $(seq "$ROUNDS"); do
    for peer in $PEERS; do
      case $s in
        max) run max "$peer" --connections 100 --batch-events 50 --interval-ms 0 ;;
        half) run half "$peer" --connections 100 --batch-events 50 --interval-ms 3 ;;
        steady) run steady "$peer" --connections 500 --batch-events 20 --interval-ms 100 ;;
        pulsed) run pulsed "$peer" --connections 500 --batch-events 20 --interval-ms 100 --aligned ;;
        curve)
          for n in 100 1000 5000 10000; do
            run "curve-$n" "$peer" --connections "$n" --batch-events 20 --interval-ms 1000
          done ;;
      esac
    done
  done
done

python3 - "$results" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault((r["scenario"], r["peer"]), []).append(r)
med = lambda xs: statistics.median(xs)
print(f"{'scenario':<12} {'peer':<13} {'events/s':>11} {'CPU s/M ev':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'peak RSS MB':>11} {'errors':>6}")
for (s, p), rs in groups.items():
    ev = med([r["events_per_s"] for r in rs])
    cpu = med([r["cpu_s"] / r["acked_events"] * 1e6 if r["acked_events"] else float("nan") for r in rs])
    print(f"{s:<12} {p:<13} {ev:>11,.0f} {cpu:>10.3f} {med([r['ack_p50_ms'] for r in rs]):>8.1f} "
          f"{med([r['ack_p99_ms'] for r in rs]):>8.1f} {med([r['ack_p999_ms'] for r in rs]):>9.1f} "
          f"{med([r['peak_kb'] for r in rs]) / 1024:>11.1f} {sum(r['errors'] for r in rs):>6}")
PY
