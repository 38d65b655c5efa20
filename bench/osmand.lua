-- wrk script for bench/trackers.sh: OsmAnd fixes from 1,000 devices, every request a new
-- (device, fix time), so nothing is deduplicated away.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  counter = 0
  key = os.getenv("KEY")
end
function request()
  counter = counter + 1
  local n = counter * 16 + tid
  local path = string.format("/v1/osmand?key=%s&id=dev%d&lat=%.5f&lon=%.5f&timestamp=%d&speed=9&batt=70",
    key, n % 1000, 52.5 + (n % 997) * 1e-4, 13.4 + (n % 991) * 1e-4, 1700000000000 + n)
  return wrk.format("GET", path)
end
function done(summary, latency, requests)
  io.write(string.format("{\"requests_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"non_2xx\":%d,\"errors\":%d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
