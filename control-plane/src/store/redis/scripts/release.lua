-- Give back every gauge slot one request holds (concurrent_requests). Idempotent.
-- release_held comes from hold.lua, which is prepended to this script.
--
-- KEYS[1]   the request's hold record: the set of gauge keys it holds
-- ARGV[1]   the request id
--
-- Returns how many gauges were released.

return release_held(KEYS[1], ARGV[1])
