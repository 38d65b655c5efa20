#!/usr/bin/env bash
# Sourced by scripts/test.sh: a MongoDB-protocol server for the MongoDB store tests.
#
# With SPOOR_TEST_MONGODB_URI already set (a real mongod, e.g. `docker compose up -d mongo`),
# that server is used. Otherwise SecantusDB (PyPI `secantusdb`, pinned below: a single-node
# server that speaks MongoDB's wire protocol over WiredTiger, with change streams and TTL
# indexes) is installed into .venv-secantus (kept out of git, reused between runs), started on
# a free port with a throwaway store, and stopped when the calling script exits. Without
# Python it says SKIPPED once and the MongoDB tests skip.

SECANTUS_VERSION=0.7.0b3

start_test_mongodb() {
  if [ -n "${SPOOR_TEST_MONGODB_URI:-}" ]; then
    echo "== MongoDB tests against SPOOR_TEST_MONGODB_URI"
    [ -n "${SPOOR_TEST_SECANTUSD:-}" ] || echo "SKIPPED: database fault test (it needs SecantusDB, which it kills and restarts; unset SPOOR_TEST_MONGODB_URI)"
    return 0
  fi
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    echo "SKIPPED: MongoDB store tests (no python3 with venv to run SecantusDB; or set SPOOR_TEST_MONGODB_URI)"
    return 0
  fi
  local venv=.venv-secantus
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('secantusdb') == '$SECANTUS_VERSION'" 2>/dev/null; then
    echo "== installing SecantusDB $SECANTUS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "secantusdb==$SECANTUS_VERSION"
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING \
    >"${TMPDIR:-/tmp}/spoor-secantus-$port.log" 2>&1 &
  SECANTUS_PID=$!
  trap 'kill "$SECANTUS_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      export SPOOR_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
      # The database fault test starts and SIGKILLs its own SecantusDB.
      export SPOOR_TEST_SECANTUSD="$PWD/$venv/bin/secantusd-py"
      echo "== MongoDB tests against SecantusDB $SECANTUS_VERSION on port $port"
      return 0
    fi
    sleep 0.1
  done
  echo "SecantusDB did not start; its log:" >&2
  cat "${TMPDIR:-/tmp}/spoor-secantus-$port.log" >&2
  return 1
}
