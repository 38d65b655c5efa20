#!/usr/bin/env bash
# Heatmaps of a page with a million clicks: what writing them costs the store, and how long
# the click map, the element list and the scroll map take to read (examples/heatmap_read.rs).
#
#   bench/heatmap.sh                                   # embedded store, 1,000,000 clicks
#   CLICKS=100000 bench/heatmap.sh
#   SPOOR_BENCH_MONGODB_URI=mongodb://127.0.0.1:27017 bench/heatmap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLICKS=${CLICKS:-1000000} cargo run --release --quiet --example heatmap_read
