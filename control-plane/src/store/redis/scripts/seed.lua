-- Re-seed a tenant's counters from the persisted usage history, then mark the tenant as
-- seeded so that checks go ahead (see check.lua).
--
-- KEYS[1..M]    seed markers, one per tenant being seeded
-- KEYS[M+1..]   counters of those tenants' current windows
-- ARGV[1]       M
-- ARGV[2]       seconds a marker lives
-- then, per counter, 3 values: used, epoch, ttl seconds
--
-- A counter that exists is left alone: what Redis holds is newer than any snapshot, and
-- two instances seeding at once must not count anything twice.

local n_markers = tonumber(ARGV[1])
local marker_ttl = tonumber(ARGV[2])
local seeded = 0
for k = n_markers + 1, #KEYS do
  local base = 2 + (k - n_markers - 1) * 3
  if redis.call('EXISTS', KEYS[k]) == 0 then
    redis.call('HSET', KEYS[k], 'u', ARGV[base + 1], 'e', ARGV[base + 2])
    redis.call('EXPIRE', KEYS[k], ARGV[base + 3])
    seeded = seeded + 1
  end
end
for m = 1, n_markers do
  redis.call('SET', KEYS[m], '1', 'EX', marker_ttl)
end
return seeded
