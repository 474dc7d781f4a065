-- wrk script for `npm run bench:soak`: append.lua's requests and counts (it is loaded here and wrapped) plus
-- a per-second timeline of answers and their latencies.
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

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "append.lua")
local appendSetup, appendInit, appendRequest, appendResponse, appendDone = setup, init, request, response, done

local threads = {}
local floor, log, concat = math.floor, math.log, table.concat
local bucketBase = log(1.1)
local startUs = nil

function setup(thread)
  appendSetup(thread)
  table.insert(threads, thread)
end

function init(args)
  appendInit(args)
  -- The timeline in flat tables (wrk's thread:get copies flat tables; a nested one crashes it), keyed by
  -- second + 1; tlBuckets by (second + 1) * 1000 + bucket.
  tlOk, tlOther, tlMax, tlBuckets = {}, {}, {}, {}
end

function request()
  local now = nowUs()
  if startUs == nil then startUs = now end
  -- The send time as the first header after the request line.
  return (appendRequest():gsub("\r\n", "\r\nx-request-id: " .. now .. "\r\n", 1))
end

function response(status, hdrs, body)
  appendResponse(status, hdrs, body)
  local now = nowUs()
  local sent = tonumber(hdrs["x-request-id"] or hdrs["X-Request-Id"] or "")
  local sec = floor((now - (startUs or now)) / 1000000) + 1
  if status ~= 201 then
    tlOther[sec] = (tlOther[sec] or 0) + 1
    return
  end
  tlOk[sec] = (tlOk[sec] or 0) + 1
  if sent ~= nil then
    local us = now - sent
    if us > (tlMax[sec] or 0) then tlMax[sec] = us end
    local key = sec * 1000 + (us <= 10 and 0 or floor(log(us / 10) / bucketBase) + 1)
    tlBuckets[key] = (tlBuckets[key] or 0) + 1
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
  appendDone(summary, latency, requests)
  local okBy, otherBy, maxBy, bucketsBy = {}, {}, {}, {}
  local seconds = 0
  for _, t in ipairs(threads) do
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
  local rows = {}
  for s = 1, seconds do
    local n = okBy[s] or 0
    local buckets = bucketsBy[s] or {}
    table.insert(rows, string.format('{"s":%d,"ok":%d,"other":%d,"p50":%d,"p99":%d,"max":%d}', s - 1, n,
      otherBy[s] or 0, bucketPercentile(buckets, n, 50), bucketPercentile(buckets, n, 99), maxBy[s] or 0))
  end
  io.write("WRK_TIMELINE [" .. concat(rows, ",") .. "]\n")
end
