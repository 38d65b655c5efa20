#!/usr/bin/env bash
# Replay speed: builds one session of about 1,000,000 events (2,000 batches of 500 realistic
# events) on a fresh embedded store, then times GET /api/sessions/{sid}/events in both
# formats: time to first byte, total time, events per second.
#
#   bench/replay.sh
#   SPOOR_BIN=/tmp/spoor-old bench/replay.sh     # another build, for before/after
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18085
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
[ -n "${SPOOR_BIN:-}" ] || cargo build --release --quiet --bin spoor
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/lib.sh
bench_config
serve_spoor "$BIN"
"$BIN" bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --connections 1 \
  --batch-events 500 --interval-ms 0 --batches 2000 --duration 120 | tail -n 1 >&2
auth=(-H "Authorization: Bearer rt_bench")
sid=$(curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/sessions?site=bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"][0]["sid"])')
events=$(curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/sessions/$sid?site=bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
for format in msgpack ndjson; do
  for run in 1 2 3; do
    curl -s "${auth[@]}" -o /dev/null -w "%{time_starttransfer} %{time_total} %{size_download}\n" \
      "http://127.0.0.1:$PORT/api/sessions/$sid/events?site=bench&format=$format"
  done | sort -n -k2 | sed -n 2p | python3 -c "
import sys
first, total, size = map(float, sys.stdin.read().split())
print(f'{\"$format\":<8} events {$events:,}  first byte {first*1000:.1f} ms  total {total*1000:.0f} ms  {$events/total/1e6:.2f} M events/s  {size/1e6:.1f} MB')"
done
