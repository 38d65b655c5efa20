#!/usr/bin/env bash
# Per-thread CPU and context switches of a server under a load: which thread spends what
# (the runtime's workers, the store's write and sync lanes, the checkpoint), how often each
# sleeps, and how long each waited for a CPU while runnable (the load generator's threads
# too: on a small machine they compete with the server's). Counts 5 s in the middle of a
# 12 s load, from /proc/<pid>/task/*/{stat,status,schedstat}.
#
#   bench/threads.sh                                   # spoor, the steady load
#   bench/threads.sh spoor --connections 100 --batch-events 50 --interval-ms 0    # max load
#   SPOOR_BIN=/tmp/spoor-old bench/threads.sh          # another build
#   bench/threads.sh bare-durable                      # a peer (bare, bare-durable, bare-inline)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18090
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
peer=${1:-spoor}
shift || true
[ $# -gt 0 ] || set -- --connections 500 --batch-events 20 --interval-ms 100
[ -n "${SPOOR_BIN:-}" ] || cargo build --release --quiet --bin spoor --example bare_ack --example bare_durable
ulimit -n "$(ulimit -Hn)"
. bench/lib.sh
bench_scratch
bench_config
case $peer in
  spoor) serve_spoor "$BIN" ;;
  bare) target/release/examples/bare_ack "127.0.0.1:$PORT" >"$work/server.log" 2>&1 & server=$!; wait_port ;;
  bare-durable) target/release/examples/bare_durable "127.0.0.1:$PORT" "$work/data" >"$work/server.log" 2>&1 & server=$!; wait_port ;;
  bare-inline) target/release/examples/bare_durable "127.0.0.1:$PORT" "$work/data" 2000 inline >"$work/server.log" 2>&1 & server=$!; wait_port ;;
  *) echo "unknown peer $peer (spoor, bare, bare-durable, bare-inline)" >&2; exit 2 ;;
esac
snap() {
  python3 - "$server" "$load" <<'PY'
import os, sys
for pid, who in ((sys.argv[1], ""), (sys.argv[2], "bench:")):
  for t in os.listdir(f"/proc/{pid}/task"):
    try:
        comm = who + open(f"/proc/{pid}/task/{t}/comm").read().strip().replace(" ", "_")
        st = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        v = nv = 0
        for line in open(f"/proc/{pid}/task/{t}/status"):
            if line.startswith("voluntary_ctxt"): v = int(line.split()[1])
            if line.startswith("nonvoluntary_ctxt"): nv = int(line.split()[1])
        # Nanoseconds spent runnable but waiting for a CPU.
        wait = int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[1])
        print(t, comm, int(st[11]) + int(st[12]), v, nv, wait)
    except OSError:
        pass  # a thread that ended meanwhile
PY
}
"$BIN" bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration 12 "$@" >"$work/out" &
load=$!
sleep 4; snap >"$work/a"; sleep 5; snap >"$work/b"
wait "$load"
tail -n 1 "$work/out"
python3 - "$work/a" "$work/b" "$(getconf CLK_TCK)" <<'PY'
import sys
def read(p):
    return {l.split()[0]: l.split()[1:] for l in open(p) if l.strip()}
a, b, tck = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
by = {}
for t, (name, cpu, v, nv, w) in b.items():
    c0, v0, n0, w0 = (int(x) for x in a.get(t, [name, 0, 0, 0, 0])[1:])
    s = by.setdefault(name, [0, 0, 0, 0])
    s[0] += int(cpu) - c0; s[1] += int(v) - v0; s[2] += int(nv) - n0; s[3] += int(w) - w0
server = {n: s for n, s in by.items() if not n.startswith("bench:")}
total = [sum(s[i] for s in server.values()) for i in range(4)]
def line(name, cpu, v, nv, w):
    print(f"{name:<22} cpu {cpu / tck:5.2f} s   waited {w / 1e9:5.2f} s   sleeps/s {v / 5:7.0f}   preempted/s {nv / 5:6.0f}")
for name, s in sorted(by.items(), key=lambda x: (x[0].startswith("bench:"), -x[1][0])):
    if s[0] or s[1]:
        line(name, *s)
line("server, all threads", *total)
print("(over 5 s; waited: runnable, waiting for a CPU)")
PY
