-- Settle what one counted request really cost, once it is over (POST /v1/settle), at
-- every level of its tenant chain, in one atomic step. Unlike a check, nothing is
-- refused: a positive correction was already served by the upstream, so it is counted
-- even past the hard limit (and the next checks reject), and a negative one gives back
-- what the check reserved and the request did not use.
--
-- Applied at most once per settlement id: the filter retries a settlement whose answer
-- it did not get, and a retry of one applied here must not count twice. The id key is
-- checked first (a duplicate changes nothing, whatever else holds), and set only once
-- the settlement is sure to be applied: a "seed" answer leaves it unset, so the retry
-- after the re-seed is applied.
--
-- Every key shares the hash tag of one tenant tree, so the script runs on Redis Cluster.
--
-- KEYS[1..M]       seed markers, one per tenant whose counters move. A missing marker
--                  means this Redis lost that tenant's counters: the script changes
--                  nothing and answers "seed", and the caller re-seeds them from the
--                  usage history first (a correction is never applied to zero).
-- KEYS[M+1..M+N]   the counters moved, one per move (hashes: `u` usage, `e` epoch)
-- KEYS[M+N+1]      the settlement's id key: exists while the settlement counts as applied
-- KEYS[M+N+2]      the hold record of the request to release, when ARGV[5] is not ''
-- ARGV[1]  M
-- ARGV[2]  seconds a marker lives (refreshed when an addition starts a counter)
-- ARGV[3]  N
-- ARGV[4]  the largest usage a counter may hold
-- ARGV[5]  the request id whose gauge slots to release ('' when none)
-- ARGV[6]  seconds the id key lives
-- then, per move, 4 values: "+" or "-", amount, ttl seconds, marker index (0: none)
--   "+"  add the amount, up to the maximum; the counter then lives ttl seconds
--   "-"  take the amount back, never below zero, from a counter that exists
--        (take_back: its epoch is bumped, its expiry kept)
--
-- Arithmetic: decimal.lua; take_back: refund.lua; release_held: hold.lua;
-- reseed_reply: marker.lua — all prepended.
-- Returns strings: { "duplicate" }, { "seed", K, K marker indices } or
-- { "ok", released, used_1..used_N } where used is each counter's usage afterwards.

local n_markers = tonumber(ARGV[1])
local marker_ttl = tonumber(ARGV[2])
local n_moves = tonumber(ARGV[3])
local max = strip(ARGV[4])
local request_id = ARGV[5]
local id_ttl = tonumber(ARGV[6])
local id_key = KEYS[n_markers + n_moves + 1]

if redis.call('EXISTS', id_key) == 1 then
  return { 'duplicate' }
end

local reseed = reseed_reply(n_markers, { 'seed' })
if reseed then
  return reseed
end

-- Applied from here on (NX: the EXISTS above already saw it absent).
redis.call('SET', id_key, '1', 'NX', 'EX', id_ttl)

local used = {}
local refresh = {}
for i = 1, n_moves do
  local base = 6 + (i - 1) * 4
  local sign = ARGV[base + 1]
  local amount = strip(ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 3])
  local marker = tonumber(ARGV[base + 4])
  local key = KEYS[n_markers + i]
  local value = strip(redis.call('HGET', key, 'u') or '0')
  if amount == '0' then
    used[i] = value
  elseif sign == '+' then
    local sum = add(value, amount)
    if not le(sum, max) then
      sum = max
    end
    redis.call('HSET', key, 'u', sum)
    redis.call('EXPIRE', key, ttl)
    if value == '0' and marker > 0 then
      refresh[marker] = true
    end
    used[i] = sum
  elseif value ~= '0' then
    used[i] = take_back(key, value, amount)
  else
    used[i] = '0'
  end
end
for m in pairs(refresh) do
  redis.call('EXPIRE', KEYS[m], marker_ttl)
end

local released = 0
if request_id ~= '' then
  released = release_held(KEYS[n_markers + n_moves + 2], request_id)
end

local out = { 'ok', tostring(released) }
for i = 1, n_moves do
  out[#out + 1] = used[i]
end
return out
