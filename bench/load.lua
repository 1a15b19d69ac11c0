-- load.lua — wrk script for bench/load.sh: POSTs one PNG to /api/predict
-- and prints a summary (requests, req/s, latency percentiles, errors).
--   wrk -t1 -s bench/load.lua URL -- BODY_FILE [REQUESTS]
-- With REQUESTS, the run ends after about that many responses instead of at
-- the -d duration. wrk has no request count, so the thread that reaches it
-- has wrk sent the SIGINT that ends a run early ($PPID of os.execute's shell
-- is wrk), from the background and 0.1 s later: system() ignores SIGINT
-- while it runs. The requests of those 0.1 s are counted too. Meant for
-- one wrk thread (-t1).
local limit, count = 0, 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  wrk.headers["Content-Type"] = "image/png"
  f:close()
  limit = tonumber(args[2] or "0")
end

function response(status, headers, body)
  count = count + 1
  if count == limit then os.execute("(sleep 0.1; kill -INT $PPID) &") end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests %d\nseconds %.2f\nrequests_per_s %.1f\n", summary.requests,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6)))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%s_ms %.2f\n", tostring(p), latency:percentile(p) / 1000))
  end
  io.write(string.format("max_ms %.2f\nnon_2xx %d\nsocket_errors %d\n", latency.max / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
