-- Give back every gauge slot one request holds (concurrent_requests). Idempotent: a
-- second release, or one after the lease timed out, finds nothing and changes nothing.
--
-- KEYS[1]   the request's lease record: the set of gauge keys it holds
-- ARGV[1]   the request id
--
-- The gauge keys come from the record and share its hash tag, so they live on the same
-- Redis Cluster node. Returns how many gauges were released.

local id = ARGV[1]
local gauges = redis.call('SMEMBERS', KEYS[1])
local released = 0
for k = 1, #gauges do
  local leases = gauges[k]
  local holdings = (string.gsub(leases, '}:g:', '}:h:', 1))
  local amount = redis.call('HGET', holdings, 'r:' .. id)
  if amount then
    redis.call('HINCRBY', holdings, '#', '-' .. amount)
    redis.call('HDEL', holdings, 'r:' .. id)
    released = released + 1
  end
  redis.call('ZREM', leases, id)
end
redis.call('DEL', KEYS[1])
return released
