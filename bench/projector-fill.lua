-- wrk script for bench/projector.ts: fills the cluster with batches of ~200 B events over a few thousand
-- streams, every ORDER_EVERY-th request to an `order-<n>` stream with the order events the projector's
-- `orders` read model folds (OrderPlaced { customerId, items }, ItemAdded { sku, quantity, unitPrice },
-- ItemRemoved { sku }, OrderShipped), the rest to `bench-<n>` streams (only `stream_summaries` uses them).
--
-- Usage: wrk -t 1 -c C -d Ds -s bench/projector-fill.lua http://leader -- RUN EVENTS BYTES STREAMS STOP ORDER_EVERY ORDER_STREAMS
--   RUN           8 hex digits, unique per wrk invocation (first group of every event id)
--   EVENTS        events per request (100)
--   BYTES         serialized size of one event object in the body (~200)
--   STREAMS       `bench-<n>` streams: bench-0 .. bench-(STREAMS-1)
--   STOP          each thread stops after this many 201 answers (0 = run for the duration) and prints
--                 WRK_THREAD_STOPPED (bench/support/projector-load.ts then sends SIGINT)
--   ORDER_EVERY   every ORDER_EVERY-th request goes to an order stream (0: none)
--   ORDER_STREAMS order streams: order-0 .. order-(ORDER_STREAMS-1)
-- Item skus cycle over 5 values, so an order keeps at most 5 lines however many ItemAdded it gets.
-- done() prints one line `WRK_RESULT {json}` like bench/append.lua.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local plainTypes = { "OrderPlaced", "ItemAdded", "ItemRemoved", "OrderShipped", "OrderPaid" }
local run, perRequest, bytes, streams, stopAfter, orderEvery, orderStreams
local headers, idPrefix
local plainTails = {}
local parts = {}
local seq = 0
local req = 0
local format, concat, rep = string.format, table.concat, string.rep

local function pad(used)
  return rep("x", math.max(0, bytes - used))
end

local function plainTail(typeName, padding)
  return '","type":"' .. typeName .. '","data":{"pad":"' .. padding .. '"}}'
end

-- order events: the data varies per event (sku, quantity), so built with one format each
local function orderEvent(i, n, counter)
  local head = idPrefix .. format("%012x", counter)
  local body
  local sku = counter % 5
  if i == 1 then
    body = format('","type":"OrderPlaced","data":{"customerId":"c-%d","items":[{"sku":"sku-%d","quantity":1,"unitPrice":12.5}],"pad":"',
      counter % 997, sku)
  elseif i == n then
    body = '","type":"OrderShipped","data":{"pad":"'
  elseif i % 10 == 0 then
    body = format('","type":"ItemRemoved","data":{"sku":"sku-%d","pad":"', sku)
  else
    body = format('","type":"ItemAdded","data":{"sku":"sku-%d","quantity":%d,"unitPrice":%d.25,"pad":"',
      sku, counter % 3 + 1, counter % 40 + 1)
  end
  return head .. body .. pad(#head + #body + 3) .. '"}}'
end

function init(args)
  run = args[1] or "00000000"
  perRequest = tonumber(args[2] or "100")
  bytes = tonumber(args[3] or "200")
  streams = tonumber(args[4] or "4000")
  stopAfter = tonumber(args[5] or "0")
  orderEvery = tonumber(args[6] or "5")
  orderStreams = tonumber(args[7] or "1000")
  idPrefix = format('{"id":"%s-%04x-4000-8000-', run, tid)
  for k, t in ipairs(plainTypes) do
    local overhead = #idPrefix + 12 + #plainTail(t, "")
    plainTails[k] = plainTail(t, pad(overhead))
  end
  headers = { ["Content-Type"] = "application/json" }
  ok, redirects, clientErrors, serverErrors, otherStatus = 0, 0, 0, 0, 0
end

function request()
  req = req + 1
  local isOrder = orderEvery > 0 and req % orderEvery == 0
  local j = 0
  for i = 1, perRequest do
    if i > 1 then
      j = j + 1
      parts[j] = ","
    end
    if isOrder then
      parts[j + 1] = orderEvent(i, perRequest, seq)
      j = j + 1
    else
      parts[j + 1] = idPrefix
      parts[j + 2] = format("%012x", seq)
      parts[j + 3] = plainTails[seq % #plainTypes + 1]
      j = j + 3
    end
    seq = seq + 1
  end
  local stream
  if isOrder then
    stream = "order-" .. ((math.floor(req / orderEvery) + tid * 7919) % orderStreams)
  else
    stream = "bench-" .. ((req * 7 + tid * 7919) % streams)
  end
  local body = '{"expectedRevision":"any","events":[' .. concat(parts, "", 1, j) .. ']}'
  return wrk.format("POST", "/streams/" .. stream .. "/events", headers, body)
end

function response(status, hdrs, body)
  if status == 201 then
    ok = ok + 1
    if stopAfter > 0 and ok == stopAfter then
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
