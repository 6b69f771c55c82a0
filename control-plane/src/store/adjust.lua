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
-- Returns strings: { usage before, usage after }.

local function strip(a)
  local s = string.gsub(a, '^0+', '')
  if s == '' then
    return '0'
  end
  return s
end

local function add(a, b)
  local digits = {}
  local carry = 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local sum = carry
    if i > 0 then
      sum = sum + string.byte(a, i) - 48
    end
    if j > 0 then
      sum = sum + string.byte(b, j) - 48
    end
    digits[#digits + 1] = string.char(48 + sum % 10)
    carry = (sum >= 10) and 1 or 0
    i = i - 1
    j = j - 1
  end
  return strip(string.reverse(table.concat(digits)))
end

local function sub(a, b)
  local digits = {}
  local borrow = 0
  local i, j = #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then
      d = d - (string.byte(b, j) - 48)
    end
    if d < 0 then
      d = d + 10
      borrow = 1
    else
      borrow = 0
    end
    digits[#digits + 1] = string.char(48 + d)
    i = i - 1
    j = j - 1
  end
  return strip(string.reverse(table.concat(digits)))
end

local function le(a, b)
  if #a ~= #b then
    return #a < #b
  end
  for k = 1, #a do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then
      return x < y
    end
  end
  return true
end

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
