#!/usr/bin/env bash
# Geofences at ingest: the cost of evaluating a position against 1,000 fences
# (examples/geofence_eval.rs), then snippet ingest with a GPS fix in every batch (each session
# drives a 2.5 km circle through the fences, ~15 m a batch), run alternately with no fences,
# with 1,000 fences, and with 1,000 fences and one webhook (a local Python receiver answering
# 204, its CPU reported) that wants every geofence event and session.start.
#
#   bench/geofences.sh            (DURATION=10 RUNS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RUNS=${RUNS:-2}
PORT=${PORT:-18087}
HOOK_PORT=${HOOK_PORT:-18088}
KEY=wk_bench_key_0001
cargo build --release --quiet --bin spoor --example geofence_eval
echo "== evaluating positions (release)"
for n in 100 1000 10000; do
  FENCES=$n POSITIONS=$([ "$n" = 10000 ] && echo 500000 || echo 2000000) target/release/examples/geofence_eval
done

work=$(mktemp -d)
trap 'kill "$server" "$hook" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/lib.sh
python3 - "$HOOK_PORT" >"$work/hook.log" 2>&1 <<'PY' &
import sys, http.server
n = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global n
        self.rfile.read(int(self.headers.get("content-length", 0)))
        n += 1
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
hook=$!
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }

one() { # label, extra toml
  rm -rf "$work/data"
  bench_config "$2"
  serve_spoor target/release/spoor
  if [ "$1" != plain ]; then
    python3 - "$PORT" <<'PY'
import json, math, random, sys, urllib.error, urllib.request
random.seed(42)
base = f"http://127.0.0.1:{sys.argv[1]}/api/geofences?site=bench"
for i in range(1000):
    lat, lon = 52.455 + random.random() * 0.09, 13.325 + random.random() * 0.15
    if i % 2 == 0:
        body = {"name": f"c{i}", "circle": {"lat": lat, "lon": lon, "radius_m": 50 + random.random() * 450}}
    else:
        # A star-shaped ring (one radius per corner): simple by construction.
        k = random.randint(6, 40); r = 0.001 + random.random() * 0.004
        rr = [r * (0.6 + 0.4 * random.random()) for _ in range(k)]
        ring = [[lat + rr[j] * math.sin(j / k * 2 * math.pi),
                 lon + rr[j] * math.cos(j / k * 2 * math.pi) * 1.6] for j in range(k)]
        body = {"name": f"p{i}", "polygon": ring}
    req = urllib.request.Request(base, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "authorization": "Bearer rt_bench"})
    try:
        urllib.request.urlopen(req).read()
    except urllib.error.HTTPError as e:
        sys.exit(f"fence {i}: {e.code} {e.read().decode()}")
PY
  fi
  local c0 out c1 h0 h1
  c0=$(cpu_s "$server"); h0=$(cpu_s "$hook")
  out=$(target/release/spoor bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration "$DURATION" \
        --connections 200 --batch-events 50 --interval-ms 0 --gps | tail -n 1)
  c1=$(cpu_s "$server"); h1=$(cpu_s "$hook")
  local events deliveries
  events=$(curl -s -H 'authorization: Bearer rt_bench' "http://127.0.0.1:$PORT/metrics" | awk '/^spoor_geofence_events_total/{s+=$2} END{print s+0}')
  deliveries=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^spoor_webhook_events_total/{s+=$2} END{print s+0}')
  kill "$server"; wait "$server" 2>/dev/null || true
  python3 - "$1" "$out" "$c0" "$c1" "$events" "$deliveries" "$h0" "$h1" <<'PY'
import json, sys
name, out, c0, c1, ev, dl, h0, h1 = sys.argv[1:]
r = json.loads(out)
cpu = float(c1) - float(c0)
print(json.dumps({"run": name, "events_per_s": round(r["events_per_s"]), "ack_p50_ms": r["ack_p50_ms"],
                  "ack_p99_ms": r["ack_p99_ms"], "errors": r["errors"], "server_cpu_s": round(cpu, 2),
                  "cpu_s_per_M_events": round(cpu / max(r["acked_events"], 1) * 1e6, 3),
                  "geofence_events": int(float(ev)), "webhook_events": int(float(dl)),
                  "receiver_cpu_s": round(float(h1) - float(h0), 2)}))
PY
}

HOOK="[[webhook]]
url = \"http://127.0.0.1:$HOOK_PORT/spoor\"
events = [\"geofence.enter\", \"geofence.exit\", \"geofence.dwell\", \"session.start\"]
secret = \"whsec_bench_0123456789\"
rate_per_s = 1000
concurrency = 16"
echo "== snippet ingest, a GPS fix in every batch, 200 sessions, ${DURATION} s each"
for _ in $(seq "$RUNS"); do
  one plain ""
  one fences ""
  one fences+webhook "$HOOK"
done
