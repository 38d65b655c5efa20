# Shared by the bench scripts: a scratch directory, a spoor config for benchmarking, and
# waiting for a port. Source it; it expects $PORT and $KEY, and $work (a scratch directory,
# which bench_scratch makes).

# Makes $work, a scratch directory, and sets $server empty; on exit, the server (once one is
# started) is stopped and $work removed.
bench_scratch() {
  work=$(mktemp -d)
  server=""
  trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
}

# Writes $work/spoor.toml: a fresh embedded store, one site, and the rate limits lifted (the
# load is deliberately far beyond what they allow one site or host). Extra TOML in $1.
bench_config() {
  cat > "$work/spoor.toml" <<TOML
listen = "127.0.0.1:$PORT"
store = "embedded:$work/data"
read_token = "rt_bench"
[[site]]
id = "bench"
write_key = "$KEY"
origins = ["*"]
dom = true
dom_session_bytes = 1_000_000_000_000
dom_minute_bytes = 1_000_000_000_000
[limits]
max_batches_per_second_per_session = 0
max_batches_per_second_per_key = 0
max_sessions_per_ip = 0
${1:-}
TOML
}

# Waits until something listens on $PORT (10 s at most).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $PORT" >&2
  cat "$work/server.log" >&2 2>/dev/null || true
  return 1
}

# Starts spoor binary $1 on $work/spoor.toml (logging to $work/server.log), sets $server to
# its pid, and waits until it listens.
serve_spoor() {
  RUST_LOG=warn "$1" serve --config "$work/spoor.toml" >"$work/server.log" 2>&1 &
  server=$!
  wait_port
}

# For the perf scripts: builds spoor unless $SPOOR_BIN names another build, checks that perf
# is installed, and starts $BIN on a fresh scratch directory and config.
perf_serve() {
  [ -n "${SPOOR_BIN:-}" ] || cargo build --release --quiet --bin spoor
  command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
  ulimit -n "$(ulimit -Hn)"
  bench_scratch
  bench_config
  serve_spoor "$BIN"
}
