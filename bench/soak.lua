-- The wrk script of scripts/soak.sh: GET / naming the next of many tenants in turn in
-- `x-tenant-id`, paced so the load is steady rather than flat-out.
--   wrk … -s bench/soak.lua URL -- PREFIX N LIMITED_PREFIX L DELAY_MS
-- rotates over PREFIX0 … PREFIX<N-1> with LIMITED_PREFIX0 … LIMITED_PREFIX<L-1> spread
-- evenly among them (the tenants soak.sh gives a small tier, so they reach their limit
-- every minute), and waits DELAY_MS after each response before the connection sends
-- again: wrk's `delay` hook is the only pacing Debian's wrk has (no -R).
local requests = {}
local next_index = 0
local pause_ms = 0

local function gateway_request(tenant)
  return wrk.format("GET", "/", { ["x-tenant-id"] = tenant })
end

function init(args)
  local prefix, count = args[1] or "t", tonumber(args[2]) or 1000
  local limited_prefix, limited = args[3] or "x", tonumber(args[4]) or 0
  pause_ms = tonumber(args[5]) or 0
  -- One limited tenant after every `every` plain ones, so their share is the same in
  -- every second of the run.
  local every = limited > 0 and math.max(1, math.floor(count / limited)) or count + 1
  local placed = 0
  for i = 0, count - 1 do
    requests[#requests + 1] = gateway_request(prefix .. i)
    if (i + 1) % every == 0 and placed < limited then
      requests[#requests + 1] = gateway_request(limited_prefix .. placed)
      placed = placed + 1
    end
  end
  for i = placed, limited - 1 do
    requests[#requests + 1] = gateway_request(limited_prefix .. i)
  end
  -- Built once here, so wrk's CPU goes to sending; start at a random tenant.
  math.randomseed(os.time())
  next_index = math.random(#requests) - 1
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function delay()
  return pause_ms
end

-- One machine-readable line for scripts/soak.sh (latencies in microseconds).
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "SOAK requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
