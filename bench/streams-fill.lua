-- wrk script for bench/streams.ts: millions of small streams `<PREFIX>-<TAG>-<n>` (one per aggregate).
--
-- Usage: wrk -t 1 -c C -d Ds -s bench/streams-fill.lua http://node -- MODE RUN PREFIX FIRST COUNT BYTES STOP
--   MODE   fill:   POST a new stream <PREFIX><FIRST + k> per request (k = this thread's request counter),
--                  expectedRevision "no_stream", with 1-3 events (n % 3 + 1: 2 on average)
--          create: the same with 1 event per new stream
--          append: POST 1 event to a random existing stream <PREFIX><0 .. COUNT-1>, "any"
--          read:   GET /streams/<PREFIX><random 0 .. COUNT-1>?consistency=local&limit=3 (a whole small
--                  stream; the first 3 events of a long one)
--   RUN    8 hex digits, unique per wrk invocation (first group of every event id)
--   PREFIX stream id up to the number: `order-<tag>-` (tag unique per benchmark run), or `bench-`
--   FIRST  fill: the first stream number; COUNT: append/read pick among streams 0 .. COUNT-1
--   BYTES  serialized size of one event object in the body (~200)
--   STOP   each thread stops after this many 2xx answers (0 = run for the duration), and at the first
--          redirect (the node lost the leadership), printing WRK_THREAD_STOPPED (bench/support/wrk.ts then
--          sends SIGINT)
-- Use one thread for fill and create (the stream numbers come from one counter). done() prints one line
-- `WRK_RESULT {json}` like bench/append.lua (ok = 2xx answers), plus `generated`: requests built, so the
-- next fill starts at FIRST + generated and never reuses a number sent before (even one still in flight).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local fillTypes = { "OrderPlaced", "ItemAdded", "OrderShipped" }
local mode, run, streamPrefix, first, count, stopAfter
local postHeaders, getHeaders, idPrefix
local tails = {}
local seq = 0
local format = string.format

local function tailFor(typeName, padding)
  return '","type":"' .. typeName .. '","data":{"pad":"' .. padding .. '"}}'
end

function init(args)
  mode = args[1] or "fill"
  run = args[2] or "00000000"
  streamPrefix = args[3] or "order-0-"
  first = tonumber(args[4] or "0")
  count = tonumber(args[5] or "1")
  local bytes = tonumber(args[6] or "200")
  stopAfter = tonumber(args[7] or "0")
  idPrefix = format('{"id":"%s-%04x-4000-8000-', run, tid)
  for k, t in ipairs(fillTypes) do
    local overhead = #idPrefix + 12 + #tailFor(t, "")
    tails[k] = tailFor(t, string.rep("x", math.max(0, bytes - overhead)))
  end
  postHeaders = { ["Content-Type"] = "application/json" }
  getHeaders = {}
  math.randomseed(tonumber(run, 16) + tid * 7919)
  generated, ok, redirects, clientErrors, serverErrors, otherStatus = 0, 0, 0, 0, 0, 0
end

local function event(k)
  local e = idPrefix .. format("%012x", seq) .. tails[k]
  seq = seq + 1
  return e
end

function request()
  generated = generated + 1
  if mode == "fill" or mode == "create" then
    local n = first + generated - 1
    local events = mode == "fill" and n % 3 + 1 or 1
    local body = event(1)
    for k = 2, events do body = body .. "," .. event(k) end
    return wrk.format("POST", "/streams/" .. streamPrefix .. n .. "/events", postHeaders,
      '{"expectedRevision":"no_stream","events":[' .. body .. ']}')
  end
  local n = math.random(0, count - 1)
  if mode == "read" then
    return wrk.format("GET", "/streams/" .. streamPrefix .. n .. "?consistency=local&limit=3", getHeaders)
  end
  return wrk.format("POST", "/streams/" .. streamPrefix .. n .. "/events", postHeaders,
    '{"expectedRevision":"any","events":[' .. event(2) .. ']}')
end

local stopped = false

local function stop()
  if stopped then return end
  stopped = true
  io.write("WRK_THREAD_STOPPED\n")
  io.flush()
  wrk.thread:stop()
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if stopAfter > 0 and ok == stopAfter then stop() end
  elseif status >= 300 and status < 400 then
    -- the node is no longer the leader: stop, the caller starts again against the new one
    redirects = redirects + 1
    stop()
  elseif status >= 400 and status < 500 then
    clientErrors = clientErrors + 1
  elseif status >= 500 then
    serverErrors = serverErrors + 1
  else
    otherStatus = otherStatus + 1
  end
end

function done(summary, latency, requests)
  local sums = { generated = 0, ok = 0, redirects = 0, clientErrors = 0, serverErrors = 0, otherStatus = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(sums) do sums[k] = sums[k] + (t:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,"ok":%d,"redirects":%d,"clientErrors":%d,' ..
    '"serverErrors":%d,"otherStatus":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"timeouts":%d,"generated":%d,"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, sums.ok, sums.redirects, sums.clientErrors,
    sums.serverErrors, sums.otherStatus, e.connect, e.read, e.write, e.timeout, sums.generated,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
