-- The wrk script of scripts/bench.sh. Every request names the next of N tenants in
-- turn (t0 … t<N-1>, then round again), as a gateway in front of many tenants sees them.
--   wrk … -s bench/wrk.lua URL -- N gateway   GET / with `x-tenant-id: tN` (through Envoy)
--   wrk … -s bench/wrk.lua URL -- N check     POST /v1/check straight to the control plane,
--                                             the body the filter sends for a GET
--   wrk … -s bench/wrk.lua URL -- N lease     POST /v1/leases straight to the control plane:
--                                             a refill of 1000 requests that returns the
--                                             tenant's previous lease half spent, as a
--                                             gateway refilling a budget does
-- Gateway and check requests are built once in init, so the client's CPU goes to sending
-- them; a lease has a new id each time (a repeated id is answered from its record).
local requests = {}
local next_index = 0
local mode = "gateway"
local lease_prefix = ""
local lease_count = 0
local last_lease = {}

local function gateway_request(tenant)
  return wrk.format("GET", "/", { ["x-tenant-id"] = tenant })
end

local function check_request(tenant)
  local body = '{"tenant":"' .. tenant .. '","roles":[],'
    .. '"amounts":{"request_bytes":0,"requests":1},"method":"GET","path":"/"}'
  return wrk.format("POST", "/v1/check", { ["content-type"] = "application/json" }, body)
end

local function lease_request(index)
  lease_count = lease_count + 1
  local id = lease_prefix .. lease_count
  local previous = "null"
  if last_lease[index] then
    previous = '{"id":"' .. last_lease[index] .. '","spent":500}'
  end
  last_lease[index] = id
  local body = '{"id":"' .. id .. '","gateway":"bench","tenant":"t' .. (index - 1) .. '",'
    .. '"roles":[],"resource":"requests","want":1000,"previous":' .. previous .. '}'
  return wrk.format("POST", "/v1/leases", { ["content-type"] = "application/json" }, body)
end

function init(args)
  local tenants = tonumber(args[1]) or 100
  mode = args[2] or "gateway"
  local build = mode == "check" and check_request or gateway_request
  for i = 0, tenants - 1 do
    requests[#requests + 1] = build("t" .. i)
  end
  -- Lease ids unique across runs and threads.
  math.randomseed(os.time())
  lease_prefix = string.format("bench-%d-%d-", os.time(), math.random(1e9))
  -- Each wrk thread starts at another tenant.
  next_index = math.random(#requests) - 1
end

function request()
  next_index = next_index % #requests + 1
  if mode == "lease" then
    return lease_request(next_index)
  end
  return requests[next_index]
end

-- One machine-readable line for scripts/bench.sh (latencies in microseconds).
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
