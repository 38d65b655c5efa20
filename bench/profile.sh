#!/usr/bin/env bash
# Where spoor's CPU goes under a load: perf records the server (flat, 999 Hz, 9 s) while
# `spoor bench` loads it, then prints the shares by DSO, the top symbols, and the shares by
# group (redb, validation, allocation, kernel, the log, signals and heat, the rest).
#
#   bench/profile.sh --connections 100 --batch-events 50 --interval-ms 0      # max load
#   bench/profile.sh --connections 500 --batch-events 20 --interval-ms 100    # steady
#   SPOOR_BIN=/tmp/spoor-old bench/profile.sh …                               # another build
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18090
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
. bench/lib.sh
perf_serve
perf record -F 999 -p "$server" -o "$work/perf.data" -- sleep 9 >/dev/null 2>&1 &
recorder=$!
"$BIN" bench --url "ws://127.0.0.1:$PORT/v1/ingest" --key "$KEY" --duration 10 "$@" | tail -n 1
wait "$recorder"
kill "$server"; wait "$server" 2>/dev/null || true; server=""
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6
perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' >"$work/syms.txt"
head -25 "$work/syms.txt"
python3 - "$work/syms.txt" <<'PY'
import re, sys
groups = ["redb", "validation (protocol::)", "malloc/free/memmove/memcmp", "kernel",
          "the log (log, redo, crc32)", "signals and heat", "tokio, tungstenite, the rest"]
share = dict.fromkeys(groups, 0.0)
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(3), m.group(4)
    if kind == "k":
        g = "kernel"
    elif "redb::" in sym:
        g = "redb"
    elif "spoor::protocol" in sym:
        g = "validation (protocol::)"
    elif re.search(r"malloc|free|memmove|memcpy|memcmp|unlink_chunk|realloc|_int_", sym):
        g = "malloc/free/memmove/memcmp"
    elif re.search(r"embedded::(log|redo)|crc32|rmp_serde::encode|rmp::encode", sym):
        g = "the log (log, redo, crc32)"
    elif re.search(r"spoor::(signals|heat)", sym):
        g = "signals and heat"
    else:
        g = "tokio, tungstenite, the rest"
    share[g] += pct
for g in groups:
    print(f"{g:<32} {share[g]:5.1f} %")
PY
