#!/usr/bin/env bash
# Every test: Rust (unit and integration), then the snippet and the replay viewer (type
# check, unit tests, and end-to-end tests in headless Chromium against the real server). Needs Node.js 20+ and
# Chromium at /usr/bin/chromium (or $CHROMIUM); .ci/run installs both on a clean machine. The
# MongoDB store suite runs against SecantusDB, which this script installs into .venv-secantus.
set -euo pipefail
cd "$(dirname "$0")/.."

# The MongoDB store suite runs against SecantusDB (or SPOOR_TEST_MONGODB_URI): see mongodb.sh.
. scripts/mongodb.sh
start_test_mongodb

cargo test
cargo build --quiet # the end-to-end tests run target/debug/spoor

for ui in js-snippet replay-ui; do
  echo "== $ui"
  (
    cd "$ui"
    npm ci --no-audit --no-fund --loglevel=error
    npx tsc --noEmit
    node test/run-unit.mjs
    node --test --test-concurrency=1 test/e2e/
  )
done
