-- Give back everything the check of one refused request took (`POST /v1/release` with
-- `refund`): its gauge slots, and what it counted in window counters, as the check
-- recorded it. The filter refused the request by its failure mode after the check was
-- counted (its answer came too late, or never), so nothing of it was admitted.
-- Idempotent: both records go with it. The counters are read from the check record and
-- share its hash tag. The check record is left empty, as a mark: a check that arrives
-- only after its take-back (they can cross on the way) then counts nothing.
--
-- decimal.lua (strip, add), refund.lua (take_back) and hold.lua (release_held) are
-- prepended.
--
-- KEYS[1]  the request's hold record: the set of gauge keys it holds
-- KEYS[2]  the check record: one "<counter key>\t<amount>\n" line per counter
-- ARGV[1]  the request id
-- ARGV[2]  milliseconds the mark lives (as long as a check record)
--
-- Returns strings: { gauges released, units refunded, the counter keys lowered... }

local released = release_held(KEYS[1], ARGV[1])
local refunded = '0'
local lowered = {}
local lines = redis.call('GET', KEYS[2])
if lines then
  for key, amount in string.gmatch(lines, '([^\t\n]+)\t([0-9]+)\n') do
    local value = strip(redis.call('HGET', key, 'u') or '0')
    if value ~= '0' then
      take_back(key, value, amount)
      lowered[#lowered + 1] = key
    end
    refunded = add(refunded, amount)
  end
end
redis.call('SET', KEYS[2], '', 'PX', ARGV[2])
local reply = { tostring(released), refunded }
for k = 1, #lowered do
  reply[#reply + 1] = lowered[k]
end
return reply
