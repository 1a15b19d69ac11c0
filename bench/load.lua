-- load.lua — wrk script for bench/load.sh: POSTs one PNG to /api/predict,
-- optionally mixed with malformed requests, and prints a summary (requests,
-- req/s, latency percentiles, errors, status codes by kind of request).
--   wrk -t1 -s bench/load.lua URL -- BODY_FILE [REQUESTS [MALFORMED_PERCENT]]
-- With REQUESTS (> 0), the run ends after about that many responses instead
-- of at the -d duration. wrk has no request count, so the thread that
-- reaches it has wrk sent the SIGINT that ends a run early ($PPID of
-- os.execute's shell is wrk), from the background and 0.1 s later: system()
-- ignores SIGINT while it runs. The requests of those 0.1 s are counted too.
-- Meant for one wrk thread (-t1).
--
-- MALFORMED_PERCENT: that share of the requests, evenly spaced, is one of
-- the malformed kinds below, taken round-robin. wrk does not say which
-- connection (so which request) a response answers, so a response is
-- attributed by what it is: the well-formed PNG is the only request
-- answered 200 with {"digit":7...}, each malformed kind has its own status
-- and error text. A response that matches no kind counts as "unexpected"
-- (load.sh fails on it), and so does a kind answered more often than it was
-- sent (a misattribution). Sent minus answered is what was in flight when
-- the run stopped (at most one per connection).
local limit, count, every = 0, 0, 0
local reqs = {}      -- kind -> the request text, built once
-- Counts, keyed "sent|KIND", "got|KIND|STATUS", "unexpected|STATUS TEXT". A
-- global (done() reads it with thread:get) and flat: wrk 4.1 copies
-- nested tables between Lua states wrongly (it crashes).
counts = {}
local function bump(key, n) counts[key] = (counts[key] or 0) + (n or 1) end
local n_sent, n_bad = 0, 0

-- name, expected status, text the error contains, and how to build it
local kinds = {
  { name = "garbage body", status = 415, sig = "unknown image format" },
  { name = "truncated PNG", status = 400, sig = "bad PNG" },
  { name = "bad JSON", status = 400, sig = "invalid JSON" },
  { name = "PNG header 100000x100000", status = 413, sig = "100000x100000" },
  { name = "wrong method (GET)", status = 405, sig = "not allowed" },
  { name = "broken multipart", status = 400, sig = "multipart" },
}
local WELL = "well-formed PNG"

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local png = f:read("*a")
  f:close()
  limit = tonumber(args[2] or "0")
  local pct = tonumber(args[3] or "0")
  if pct > 0 then every = pct end
  local path = wrk.path
  reqs[WELL] = wrk.format("POST", path, { ["Content-Type"] = "image/png" }, png)
  local garbage = {}
  for i = 1, 512 do garbage[i] = string.char((i * 73 + 41) % 256) end
  reqs["garbage body"] = wrk.format("POST", path, { ["Content-Type"] = "application/octet-stream" },
    table.concat(garbage))
  reqs["truncated PNG"] = wrk.format("POST", path, { ["Content-Type"] = "image/png" }, png:sub(1, 100))
  reqs["bad JSON"] = wrk.format("POST", path, { ["Content-Type"] = "application/json" },
    '{"pixels": [0, 12, 255, "x" ')
  -- the same PNG with the width and height in IHDR (bytes 17..24) set to 100000: refused from the
  -- header, before any pixel is inflated (the CRC is not checked first)
  reqs["PNG header 100000x100000"] = wrk.format("POST", path, { ["Content-Type"] = "image/png" },
    png:sub(1, 16) .. be32(100000) .. be32(100000) .. png:sub(25))
  reqs["wrong method (GET)"] = wrk.format("GET", path, {}, nil)
  reqs["broken multipart"] = wrk.format("POST", path,
    { ["Content-Type"] = "multipart/form-data; boundary=XyZ" },
    '--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nno file here\r\n--XyZ--\r\n')
end

function request()
  -- request n is malformed when floor(n * pct / 100) steps: evenly spaced
  local kind = WELL
  if every > 0 and math.floor((n_sent + 1) * every / 100) > math.floor(n_sent * every / 100) then
    kind = kinds[n_bad % #kinds + 1].name
    n_bad = n_bad + 1
  end
  n_sent = n_sent + 1
  bump("sent|" .. kind)
  return reqs[kind]
end

local function attribute(status, body)
  if status == 200 and body:sub(1, 10) == '{"digit":7' then return WELL end
  for _, k in ipairs(kinds) do
    if status == k.status and body:find(k.sig, 1, true) then return k.name end
  end
  return nil
end

function response(status, headers, body)
  count = count + 1
  local kind = attribute(status, body or "")
  if kind then
    bump(string.format("got|%s|%d", kind, status))
  else
    bump(string.format("unexpected|%d %s", status, ((body or ""):sub(1, 80):gsub("%s", " "))))
  end
  if count == limit then os.execute("(sleep 0.1; kill -INT $PPID) &") end
end

-- done() runs in the main script state: the counts live in the thread's
local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests %d\nseconds %.2f\nrequests_per_s %.1f\n", summary.requests,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6)))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%s_ms %.2f\n", tostring(p), latency:percentile(p) / 1000))
  end
  io.write(string.format("max_ms %.2f\nnon_2xx %d\nsocket_errors %d\n", latency.max / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
  -- by kind, summed over threads: "kind <name>|<sent>|<status>:<n> ..." and the checks
  local names = { WELL }
  for _, k in ipairs(kinds) do table.insert(names, k.name) end
  local expect = { [WELL] = 200 }
  for _, k in ipairs(kinds) do expect[k.name] = k.status end
  local any_5xx, misattributed, n_unexpected, bad_sent = 0, 0, 0, 0
  local all = {}  -- the threads' counts, summed
  for _, t in ipairs(threads) do
    for key, n in pairs(t:get("counts") or {}) do all[key] = (all[key] or 0) + n end
  end
  for _, name in ipairs(names) do
    local s, total, parts, codes = all["sent|" .. name] or 0, 0, {}, {}
    for key, n in pairs(all) do
      local k, st = key:match("^got|(.*)|(%d+)$")
      if k == name then table.insert(codes, { tonumber(st), n }) end
    end
    table.sort(codes, function(a, b) return a[1] < b[1] end)
    for _, c in ipairs(codes) do
      table.insert(parts, string.format("%d:%d", c[1], c[2]))
      total = total + c[2]
    end
    if total > s then misattributed = misattributed + (total - s) end
    if name ~= WELL then bad_sent = bad_sent + s end
    io.write(string.format("kind %s|%d|%d|%d|%s\n", name, expect[name], s, total, table.concat(parts, " ")))
  end
  for key, n in pairs(all) do
    local text = key:match("^unexpected|(.*)$")
    if text then
      io.write(string.format("unexpected %d %s\n", n, text))
      n_unexpected = n_unexpected + n
      if tonumber(text:match("^%d+")) >= 500 then any_5xx = any_5xx + n end
    end
  end
  -- no kind expects a 5xx, so any 5xx is unexpected: a well-formed one included
  io.write(string.format("malformed_sent %d\nall_5xx %d\nunexpected_responses %d\nmisattributed %d\n",
    bad_sent, any_5xx, n_unexpected, misattributed))
end
