-- wrk script for the detector benchmark: POST JSON bodies read from a file, one per line,
-- rotating through them so that consecutive requests carry distinct rows (or the same row
-- when the file has one line: the cache-hit path). Requests are pre-formatted in init()
-- so that the load generator spends its CPU on sockets, not on string building.
-- Arguments after `--`: <path> <bodies file> [start offset]
-- done() prints one machine-readable line starting with WRKJSON.

local requests_ = {}
local count = 0
local idx = 0

function init(args)
  local path = args[1]
  local file = args[2]
  local offset = tonumber(args[3] or "0")
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(file) do
    if #line > 0 then
      count = count + 1
      requests_[count] = wrk.format("POST", path, headers, line)
    end
  end
  if count == 0 then
    error("no request bodies in " .. file)
  end
  idx = offset % count
end

function request()
  idx = idx % count + 1
  return requests_[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"lat_mean_us":%.1f,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)))
end
