#!/usr/bin/env bash
# Hostile clients (bench/attack.py) against a release build of spoor with its default limits,
# one fresh server per scenario; prints one JSON line per scenario. For docs/security.md.
#
#   bench/attack.sh                    # silent stalled fragments deaf
#   bench/attack.sh fragments          # one scenario
#   SPOOR_BIN=target/release/spoor bench/attack.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18090}
KEY=wk_bench_key_0001
BIN=${SPOOR_BIN:-target/release/spoor}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -n "${SPOOR_BIN:-}" ] || cargo build --release --quiet

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/lib.sh

for scenario in "${@:-silent stalled fragments deaf}"; do
  for s in $scenario; do
    rm -rf "$work/data"
    # Default limits: what a fresh install runs with.
    cat > "$work/spoor.toml" <<TOML
listen = "127.0.0.1:$PORT"
store = "embedded:$work/data"
read_token = "rt_bench_token_0001"
[[site]]
id = "bench"
write_key = "$KEY"
origins = ["*"]
TOML
    serve_spoor "$BIN"
    python3 bench/attack.py --port "$PORT" --key "$KEY" --pid "$server" "$s"
    kill "$server"; wait "$server" 2>/dev/null || true
  done
done
