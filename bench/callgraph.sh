#!/usr/bin/env bash
# Where spoor's CPU goes under a load, by stage: perf records the server with call graphs
# (DWARF, 499 Hz, 4 s in the middle of a 10 s load), then prints each stage's inclusive share
# of the server's samples (a sample counts for every stage on its stack) and its CPU in
# nanoseconds per event (samples / 499 Hz over the events of those 4 s, at the load's mean
# rate: comparable between builds, where shares are not), and the futex calls by cause
# (glibc's arena locks, the runtime's parking, the rest).
#
#   bench/callgraph.sh --connections 100 --batch-events 50 --interval-ms 0     # max load
#   bench/callgraph.sh --connections 500 --batch-events 20 --interval-ms 100   # steady
#   SPOOR_BIN=/tmp/spoor-old bench/callgraph.sh …                              # another build
#   STAGES="decode_frame HeatDelta::add" bench/callgraph.sh …                  # other stages
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18093
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
STAGES=${STAGES:-"read_frame x64_sys_recvfrom decode_frame validate_events SignalWalker::observe Pipeline::try_submit Batcher::run group_record apply_group Log::append x64_sys_sendto x64_sys_futex"}
. bench/lib.sh
perf_serve
"$BIN" bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration 10 "$@" | tail -n 1 | tee "$work/out" &
load=$!
sleep 3
perf record -F 499 --call-graph dwarf,16384 -p "$server" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1
wait "$load"
perf script -i "$work/perf.data" -F comm,tid,ip,sym 2>/dev/null >"$work/stacks.txt"
python3 - "$work/stacks.txt" "$work/out" $STAGES <<'PY'
import collections, json, re, sys
path, out, stages = sys.argv[1], sys.argv[2], sys.argv[3:]
events = json.load(open(out))["events_per_s"] * 4
total, inclusive, futex = 0, collections.Counter(), collections.Counter()
stack = []
def flush():
    global total
    if not stack:
        return
    total += 1
    for st in stages:
        if any(st in f for f in stack):
            inclusive[st] += 1
    if any("x64_sys_futex" in f for f in stack):
        j = " ".join(stack)
        if re.search(r"_int_free|__libc_free|cfree|_int_malloc|__libc_malloc|__libc_realloc", j):
            futex["glibc arena locks (malloc/free)"] += 1
        elif "park" in j.lower():
            futex["parking and unparking threads"] += 1
        else:
            futex["other (mutexes, channels)"] += 1
for line in open(path, errors="replace"):
    if not line.strip():
        flush(); stack = []
    elif not line.startswith((" ", "\t")):
        stack = []
    else:
        parts = line.strip().split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "?")
flush()
ns = lambda n: n / 499 / max(events, 1) * 1e9
print(f"{total} samples, {ns(total):.0f} ns of server CPU per event; by stage (inclusive):")
for st in stages:
    print(f"  {100 * inclusive[st] / max(total, 1):5.1f} %  {ns(inclusive[st]):6.1f} ns/event  {st}")
print("futex calls by cause:")
for k, n in futex.most_common():
    print(f"  {100 * n / max(total, 1):5.1f} %  {ns(n):6.1f} ns/event  {k}")
PY
