-- Change one limit's usage by hand: a reset to zero, or a signed adjustment for credits
-- and corrections. Either bumps each touched counter's epoch, so that a snapshot taken
-- before the change can never overwrite it in the usage history.
--
-- KEYS          the limit's counters, current window (or bucket) first
-- ARGV[1]       "to" (set every counter to ARGV[2]) or "by" (add ARGV[2], signed)
-- ARGV[2]       the value (decimal; "by" may start with "-")
-- ARGV[3]       the largest usage a counter may hold
-- ARGV[4]       ttl seconds of the first counter when it is created
--
-- A positive "by" is added to the current counter, up to the maximum. A negative one is
-- taken from the newest counters first and stops at zero: usage never goes negative.
-- Returns strings: { usage before, usage after }. Arithmetic: decimal.lua, prepended.

local how, value, max, ttl = ARGV[1], ARGV[2], strip(ARGV[3]), ARGV[4]

local values, before = {}, '0'
for k = 1, #KEYS do
  values[k] = strip(redis.call('HGET', KEYS[k], 'u') or '0')
  before = add(before, values[k])
end

local function store(k, v)
  if redis.call('EXISTS', KEYS[k]) == 0 then
    if v == '0' then
      return
    end
    redis.call('HSET', KEYS[k], 'u', v)
    redis.call('EXPIRE', KEYS[k], ttl)
  else
    redis.call('HSET', KEYS[k], 'u', v)
  end
  redis.call('HINCRBY', KEYS[k], 'e', 1)
  values[k] = v
end

if how == 'to' then
  for k = 1, #KEYS do
    store(k, k == 1 and strip(value) or '0')
  end
elseif string.sub(value, 1, 1) == '-' then
  local left = strip(string.sub(value, 2))
  for k = 1, #KEYS do
    if left == '0' then
      break
    end
    if le(values[k], left) then
      left = sub(left, values[k])
      store(k, '0')
    else
      store(k, sub(values[k], left))
      left = '0'
    end
  end
else
  local sum = add(values[1], strip(value))
  if not le(sum, max) then
    sum = max
  end
  store(1, sum)
end

local after = '0'
for k = 1, #KEYS do
  after = add(after, values[k])
end
return { before, after }
