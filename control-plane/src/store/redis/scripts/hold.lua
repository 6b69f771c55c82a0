-- Giving back gauge slots (concurrent_requests), prepended to the scripts that release:
-- `POST /v1/release` and a settlement that names a request id to release.
--
-- A hold record is the set of gauge keys one request holds; the gauge keys come from it
-- and share its hash tag, so they live on the same Redis Cluster node. Idempotent: a
-- second release, or one after the hold timed out, finds nothing and changes nothing.

-- Releases what request `id` holds under the record `record`; returns how many gauges
-- held a slot for it.
local function release_held(record, id)
  local gauges = redis.call('SMEMBERS', record)
  local released = 0
  for k = 1, #gauges do
    local holds = gauges[k]
    local holdings = (string.gsub(holds, '}:g:', '}:h:', 1))
    local amount = redis.call('HGET', holdings, 'r:' .. id)
    if amount then
      redis.call('HINCRBY', holdings, '#', '-' .. amount)
      redis.call('HDEL', holdings, 'r:' .. id)
      released = released + 1
    end
    redis.call('ZREM', holds, id)
  end
  redis.call('DEL', record)
  return released
end
