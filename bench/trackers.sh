#!/usr/bin/env bash
# Tracker ingest and track reads: wrk sends OsmAnd fixes (each answered only once durable)
# from 1,000 devices for 10 s at 64 connections; then one device's 100,000-fix track is read
# in pages of 10,000, whole and simplified, and its trips and stays are computed (with the
# server's peak RSS before and after: the computation reads the track a page at a time).
#
#   bench/trackers.sh          (needs wrk: apt-get install wrk)
#   NO_WRK=1 bench/trackers.sh (the track part alone)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18086
KEY=wk_bench_key_0001
cargo build --release --quiet --bin spoor
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/lib.sh
bench_config
serve_spoor target/release/spoor
if [ -z "${NO_WRK:-}" ]; then
  echo "== OsmAnd fixes, 64 connections, 10 s"
  KEY=$KEY wrk -t2 -c64 -d10s -s bench/osmand.lua "http://127.0.0.1:$PORT" | tail -n 1
fi

echo "== a 100,000-fix track"
python3 - "$PORT" "$KEY" "$server" <<'PY'
import json, sys, time, urllib.request
port, key, pid = sys.argv[1], sys.argv[2], sys.argv[3]
def mem():
    kb = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith(("VmRSS", "VmHWM"))}
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
base = f"http://127.0.0.1:{port}"
# Overland batches of 1,000: 100 requests.
t0 = 1_700_000_000_000
for b in range(100):
    locs = [{"geometry": {"coordinates": [13.4 + (i % 500) * 1e-4, 52.5 + i * 1e-6]},
             "properties": {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + i * 1000) / 1000)) + "Z",
                            "speed": 5, "device_id": "truck"}}
            for i in range(b * 1000, (b + 1) * 1000)]
    req = urllib.request.Request(f"{base}/v1/overland/{key}", data=json.dumps({"locations": locs}).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()
# Trips and stays over the whole track, before anything else reads it.
rss, hwm = mem()
auth = {"authorization": "Bearer rt_bench"}
times = []
for _ in range(3):
    start = time.perf_counter()
    out = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{base}/api/devices/truck/trips?site=bench", headers=auth)))
    times.append(time.perf_counter() - start)
rss2, hwm2 = mem()
print(f"trips        100,000 positions: {min(times)*1000:.0f} ms, {len(out['trips'])} trips, "
      f"{len(out['stays'])} stays; RSS {rss:.1f} -> {rss2:.1f} MiB, peak {hwm:.1f} -> {hwm2:.1f} MiB")
def read(extra):
    start, n, after, pages = time.perf_counter(), 0, None, 0
    while True:
        url = f"{base}/api/devices/truck/track?site=bench&limit=10000{extra}" + (f"&after={after}" if after else "")
        page = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"authorization": "Bearer rt_bench"})))
        n += len(page["positions"]); pages += 1
        after = page["next"]
        if after is None:
            return n, pages, time.perf_counter() - start
for label, extra in [("whole", ""), ("simplify=10", "&simplify=10")]:
    best = min((read(extra) for _ in range(3)), key=lambda r: r[2])
    print(f"{label:<12} {best[0]:>7,} positions in {best[1]} pages: {best[2]*1000:.0f} ms")
PY
