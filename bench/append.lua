-- wrk script: POST /streams/{id}/events with unique event ids (API.md "Append").
--
-- Usage: wrk -t T -c C -d Ds -s bench/append.lua http://leader -- RUN EVENTS BYTES STREAMS STOP
--   RUN     8 hex digits, unique per wrk invocation (first group of every event id)
--   EVENTS  events per request (1, 100, 1000)
--   BYTES   serialized size of one event object in the body (~200)
--   STREAMS streams written round-robin: bench-0 .. bench-(STREAMS-1)
--   STOP    each thread stops after this many 201 answers (0 = run for the duration) and prints
--           WRK_THREAD_STOPPED; wrk itself ends early only on SIGINT (bench/support/wrk.ts sends it)
-- Event id: RUN-TTTT-4000-8000-CCCCCCCCCCCC (T = thread, C = the thread's event counter): unique per run.
-- done() prints one line `WRK_RESULT {json}` with counts, statuses and latency percentiles (us).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local types = { "OrderPlaced", "ItemAdded", "ItemRemoved", "OrderShipped", "OrderPaid" }
local run, perRequest, streams, stopAfter
local headers, idPrefix
-- Each event is idPrefix .. 12 hex digits of the counter .. tails[type]: one string.format per event, so
-- wrk stays light (it shares the 2 cores with the cluster it measures).
local tails = {}
local parts = {}
local seq = 0
local format, concat = string.format, table.concat

local function tailFor(typeName, padding)
  return '","type":"' .. typeName .. '","data":{"pad":"' .. padding .. '"}}'
end

function init(args)
  run = args[1] or "00000000"
  perRequest = tonumber(args[2] or "1")
  local bytes = tonumber(args[3] or "200")
  streams = tonumber(args[4] or "1000")
  stopAfter = tonumber(args[5] or "0")
  -- RUN-TTTT-4000-8000-CCCCCCCCCCCC: version 4 and variant 8 nibbles fixed, C = this thread's counter
  idPrefix = format('{"id":"%s-%04x-4000-8000-', run, tid)
  for k, t in ipairs(types) do
    local overhead = #idPrefix + 12 + #tailFor(t, "")
    tails[k] = tailFor(t, string.rep("x", math.max(0, bytes - overhead)))
  end
  headers = { ["Content-Type"] = "application/json" }
  ok, redirects, clientErrors, serverErrors, otherStatus = 0, 0, 0, 0, 0
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
  return wrk.format("POST", "/streams/" .. stream .. "/events", headers, body)
end

function response(status, hdrs, body)
  if status == 201 then
    ok = ok + 1
    if stopAfter > 0 and ok == stopAfter then
      -- wrk's main thread sleeps for the whole -d duration: the caller sends SIGINT on this line
      io.write("WRK_THREAD_STOPPED\n")
      io.flush()
      wrk.thread:stop()
    end
  elseif status >= 300 and status < 400 then
    redirects = redirects + 1
  elseif status >= 400 and status < 500 then
    clientErrors = clientErrors + 1
  elseif status >= 500 then
    serverErrors = serverErrors + 1
  else
    otherStatus = otherStatus + 1
  end
end

function done(summary, latency, requests)
  local sums = { ok = 0, redirects = 0, clientErrors = 0, serverErrors = 0, otherStatus = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(sums) do sums[k] = sums[k] + (t:get(k) or 0) end
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
end
