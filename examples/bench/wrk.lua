-- The wrk script of the hookgate bench harness (examples/bench/wrk.rs runs it and writes the
-- pool it loads). HMAC in Lua would bound the generator, so every request is signed by the
-- harness beforehand and built here once, in init; request() only hands out the next one.
--
--   wrk -t1 -c64 -d10s --latency -s wrk.lua URL -- POOL cycle|once
--
-- POOL: line 1 the path, line 2 the body with NNNNNNNNNN where each request's number goes,
-- then one line per request: webhook-id, webhook-timestamp, webhook-signature, number.
-- cycle: go round the pool for the whole run (counting the wraps: a wrap repeats ids).
-- once: send each request once; a connection with none left to send is parked (delay())
-- while the last answers arrive; print "harness-sent-all" when every POST has its answer,
-- and stop (the harness then interrupts wrk, which prints its summary).
-- One thread only (-t1): wrk checks the script by calling request() once on that thread.

local pool, size, i, first, reserved = {}, 0, 0, true, 0
local once = false
-- Globals: done() reads them through thread:get.
sent, ok, other, wraps = 0, 0, 0, 0

-- once: each connection asks before each request; only `size` of them go at once, the rest
-- wait for an hour (the run ends long before).
local function parking_delay()
  if reserved < size then
    reserved = reserved + 1
    return 0
  end
  return 3600000
end

local function counting_response(status)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    other = other + 1
  end
  if ok + other == size then
    io.write("harness-sent-all\n")
    io.flush()
    wrk.thread:stop()
  end
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local path = f:read("*l")
  local pre, suf = f:read("*l"):match("^(.-)NNNNNNNNNN(.*)$")
  for line in f:lines() do
    local id, ts, sig, n = line:match("^(%S+) (%S+) (%S+) (%S+)$")
    size = size + 1
    pool[size] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["webhook-id"] = id,
      ["webhook-timestamp"] = ts,
      ["webhook-signature"] = sig,
    }, pre .. n .. suf)
  end
  f:close()
  once = args[2] == "once"
  if once then
    delay = parking_delay
    response = counting_response
  end
  io.write("harness-ready " .. size .. "\n")
  io.flush()
end

function request()
  if first then
    -- wrk's own check of the script: parsed, never sent.
    first = false
    return pool[1]
  end
  i = i + 1
  if i > size then
    i = 1
    wraps = wraps + 1
  end
  sent = sent + 1
  return pool[i]
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency)
  local e, t = summary.errors, threads[1]
  io.write(string.format(
    "harness-summary duration_us=%.0f requests=%.0f connect=%.0f read=%.0f write=%.0f " ..
    "status=%.0f timeout=%.0f p50=%.0f p90=%.0f p99=%.0f p999=%.0f max=%.0f " ..
    "sent=%.0f ok=%.0f other=%.0f wraps=%.0f\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    t:get("sent"), t:get("ok"), t:get("other"), t:get("wraps")))
end
