-- The wrk script of scripts/bench.sh. Every request names the next of N tenants in
-- turn (t0 … t<N-1>, then round again), as a gateway in front of many tenants sees them.
--   wrk … -s bench/wrk.lua URL -- N gateway   GET / with `x-tenant-id: tN` (through Envoy)
--   wrk … -s bench/wrk.lua URL -- N check     POST /v1/check straight to the control plane,
--                                             the body the filter sends for a GET
-- The requests are built once in init, so the client's CPU goes to sending them.
local requests = {}
local next_index = 0

local function gateway_request(tenant)
  return wrk.format("GET", "/", { ["x-tenant-id"] = tenant })
end

local function check_request(tenant)
  local body = '{"tenant":"' .. tenant .. '","roles":[],'
    .. '"amounts":{"request_bytes":0,"requests":1},"method":"GET","path":"/"}'
  return wrk.format("POST", "/v1/check", { ["content-type"] = "application/json" }, body)
end

function init(args)
  local tenants = tonumber(args[1]) or 100
  local build = args[2] == "check" and check_request or gateway_request
  for i = 0, tenants - 1 do
    requests[#requests + 1] = build("t" .. i)
  end
  -- Each wrk thread starts at another tenant.
  next_index = math.random(#requests) - 1
end

function request()
  next_index = next_index % #requests + 1
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
