#!/usr/bin/env bash
# Every test: Rust (unit and integration), then the snippet and the replay viewer (type
# check, unit tests, and end-to-end tests in headless Chromium against the real server). Needs Node.js 20+ and
# Chromium at /usr/bin/chromium (or $CHROMIUM), which it installs where it can. The MongoDB
# store suite runs against SecantusDB, which this script installs into .venv-secantus.
set -euo pipefail
cd "$(dirname "$0")/.."

# Chromium for the browser tests, where it is missing and can be installed (Debian, as root).
if ! command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: install it (Debian: apt-get install chromium) or set CHROMIUM" >&2
    exit 1
  fi
fi

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

# The browser end to end once more with spoor on MongoDB: the snippet → replay tests (the
# full-page replay ones included) and the tracker → live map test.
if [ -n "${SPOOR_TEST_MONGODB_URI:-}" ]; then
  echo "== end to end on MongoDB ($SPOOR_TEST_MONGODB_URI)"
  export SPOOR_E2E_MONGODB_URI="$SPOOR_TEST_MONGODB_URI"
  (cd js-snippet && node --test --test-concurrency=1 test/e2e/snippet.test.mjs test/e2e/dom.test.mjs)
  (cd replay-ui && node --test --test-concurrency=1 test/e2e/map.test.mjs)
fi
