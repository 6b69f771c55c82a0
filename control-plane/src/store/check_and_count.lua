-- Check and count every counter of one request atomically (SPEC §2).
--
-- KEYS[i]           counter i (all keys share one hash tag: one tenant tree, one slot)
-- ARGV[3i-2]        amount to add to counter i
-- ARGV[3i-1]        cap: the largest value counter i may reach
-- ARGV[3i]          unix second at which counter i expires (EXPIREAT)
--
-- Admits only if used + amount <= cap for every counter, then increments them all;
-- otherwise changes nothing. This is Limit::decide's reject rule, `used + amount > hard`.
--
-- Redis Lua numbers are doubles, exact only to 2^53, so all arithmetic here is done on
-- decimal strings: accounting stays exact up to the counter maximum (2^63 - 1).
--
-- Returns, as strings: { admitted ("1"|"0"), violating counter (1-based, "0" if none),
-- used_1, ..., used_n } with used after the increment when admitted, unchanged if not.

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

-- a <= b for canonical non-negative decimal strings, byte by byte (no locale).
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

local function reply(admitted, violated, used)
  local out = { admitted, tostring(violated) }
  for k = 1, #used do
    out[#out + 1] = used[k]
  end
  return out
end

local used = {}
for i = 1, #KEYS do
  used[i] = strip(redis.call('GET', KEYS[i]) or '0')
end

for i = 1, #KEYS do
  if not le(add(used[i], strip(ARGV[3 * i - 2])), strip(ARGV[3 * i - 1])) then
    return reply('0', i, used)
  end
end

for i = 1, #KEYS do
  local amount = strip(ARGV[3 * i - 2])
  if amount ~= '0' then
    redis.call('INCRBY', KEYS[i], amount)
    redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
    used[i] = add(used[i], amount)
  end
end

return reply('1', 0, used)
