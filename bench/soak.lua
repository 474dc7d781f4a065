-- wrk script for `npm run bench:soak`: append.lua's requests (single events with unique ids, round-robin
-- over STREAMS streams) plus a per-second timeline of answers and their latencies.
--
-- Usage: wrk -t 1 -c C -d Ds -s bench/soak.lua URL -- RUN EVENTS BYTES STREAMS
-- Each request carries its send time (CLOCK_MONOTONIC, microseconds) in `x-request-id`; the event store
-- and the trivial server echo that header, so response() knows each answer's latency without wrk telling
-- it which request an answer belongs to. Answers are counted in the second they arrived (from the first
-- request), with latencies in log buckets 10% wide.
-- done() prints `WRK_RESULT {json}` (as append.lua) and `WRK_TIMELINE [json]`: per second
-- {"s", "ok", "other", "p50", "p99", "max"} with latencies in microseconds.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
  int clock_gettime(int clk_id, soak_timespec *tp);
]]
local ts = ffi.new("soak_timespec")
local function nowUs()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local types = { "OrderPlaced", "ItemAdded", "ItemRemoved", "OrderShipped", "OrderPaid" }
local perRequest, streams
local headers, idPrefix
local tails = {}
local parts = {}
local seq = 0
local format, concat, floor, log = string.format, table.concat, math.floor, math.log
local bucketBase = log(1.1)
local startUs = nil

local function tailFor(typeName, padding)
  return '","type":"' .. typeName .. '","data":{"pad":"' .. padding .. '"}}'
end

function init(args)
  local run = args[1] or "00000000"
  perRequest = tonumber(args[2] or "1")
  local bytes = tonumber(args[3] or "200")
  streams = tonumber(args[4] or "1000")
  idPrefix = format('{"id":"%s-%04x-4000-8000-', run, tid)
  for k, t in ipairs(types) do
    local overhead = #idPrefix + 12 + #tailFor(t, "")
    tails[k] = tailFor(t, string.rep("x", math.max(0, bytes - overhead)))
  end
  headers = { ["Content-Type"] = "application/json", ["x-request-id"] = "0" }
  ok, redirects, clientErrors, serverErrors, otherStatus = 0, 0, 0, 0, 0
  -- The timeline in flat tables (wrk's thread:get copies flat tables; a nested one crashes it), keyed by
  -- second + 1; tlBuckets by (second + 1) * 1000 + bucket.
  tlOk, tlOther, tlMax, tlBuckets = {}, {}, {}, {}
end

function request()
  local j = 0
  for i = 1, perRequest do
    if i > 1 then
      j = j + 1
      parts[j] = ","
    end
    parts[j + 1] = idPrefix
    parts[j + 2] = format("%012x", seq)
    parts[j + 3] = tails[seq % #types + 1]
    j = j + 3
    seq = seq + 1
  end
  local stream = "bench-" .. ((seq + tid * 7919) % streams)
  local body = '{"expectedRevision":"any","events":[' .. concat(parts, "", 1, j) .. ']}'
  local now = nowUs()
  if startUs == nil then startUs = now end
  headers["x-request-id"] = tostring(now)
  return wrk.format("POST", "/streams/" .. stream .. "/events", headers, body)
end

function response(status, hdrs, body)
  local now = nowUs()
  local sent = tonumber(hdrs["x-request-id"] or hdrs["X-Request-Id"] or "")
  local sec = floor((now - (startUs or now)) / 1000000) + 1
  if status == 201 then
    ok = ok + 1
    tlOk[sec] = (tlOk[sec] or 0) + 1
    if sent ~= nil then
      local us = now - sent
      if us > (tlMax[sec] or 0) then tlMax[sec] = us end
      local key = sec * 1000 + (us <= 10 and 0 or floor(log(us / 10) / bucketBase) + 1)
      tlBuckets[key] = (tlBuckets[key] or 0) + 1
    end
  else
    tlOther[sec] = (tlOther[sec] or 0) + 1
    if status >= 300 and status < 400 then
      redirects = redirects + 1
    elseif status >= 400 and status < 500 then
      clientErrors = clientErrors + 1
    elseif status >= 500 then
      serverErrors = serverErrors + 1
    else
      otherStatus = otherStatus + 1
    end
  end
end

-- The upper bound (us) of the bucket holding the p-th percentile of `buckets` (n answers in all).
local function bucketPercentile(buckets, n, p)
  if n == 0 then return 0 end
  local keys = {}
  for b, _ in pairs(buckets) do table.insert(keys, b) end
  table.sort(keys)
  local want = math.ceil(n * p / 100)
  local seen = 0
  for _, b in ipairs(keys) do
    seen = seen + buckets[b]
    if seen >= want then return floor(10 * 1.1 ^ b) end
  end
  return 0
end

function done(summary, latency, requests)
  local sums = { ok = 0, redirects = 0, clientErrors = 0, serverErrors = 0, otherStatus = 0 }
  local okBy, otherBy, maxBy, bucketsBy = {}, {}, {}, {}
  local seconds = 0
  for _, t in ipairs(threads) do
    for k, _ in pairs(sums) do sums[k] = sums[k] + (t:get(k) or 0) end
    for s, n in pairs(t:get("tlOk") or {}) do
      okBy[s] = (okBy[s] or 0) + n
      if s > seconds then seconds = s end
    end
    for s, n in pairs(t:get("tlOther") or {}) do
      otherBy[s] = (otherBy[s] or 0) + n
      if s > seconds then seconds = s end
    end
    for s, us in pairs(t:get("tlMax") or {}) do
      if us > (maxBy[s] or 0) then maxBy[s] = us end
    end
    for key, n in pairs(t:get("tlBuckets") or {}) do
      local s = floor(key / 1000)
      local b = key - s * 1000
      bucketsBy[s] = bucketsBy[s] or {}
      bucketsBy[s][b] = (bucketsBy[s][b] or 0) + n
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,"ok":%d,"redirects":%d,"clientErrors":%d,' ..
    '"serverErrors":%d,"otherStatus":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"timeouts":%d,"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, sums.ok, sums.redirects, sums.clientErrors,
    sums.serverErrors, sums.otherStatus, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
  local rows = {}
  for s = 1, seconds do
    local n = okBy[s] or 0
    local buckets = bucketsBy[s] or {}
    table.insert(rows, string.format('{"s":%d,"ok":%d,"other":%d,"p50":%d,"p99":%d,"max":%d}', s - 1, n,
      otherBy[s] or 0, bucketPercentile(buckets, n, 50), bucketPercentile(buckets, n, 99), maxBy[s] or 0))
  end
  io.write("WRK_TIMELINE [" .. concat(rows, ",") .. "]\n")
end
