-- Reading windowed limits' usage and answering it, prepended (after decimal.lua) to the
-- scripts that count: a check, a lease.

-- The usage of the window op whose counters (hashes, usage in field `u`) are
-- KEYS[first .. first + count - 1], current first: their sum, the position (1-based, 0
-- if none) of the oldest that holds usage, and the current counter's usage.
local function window_usage(first, count)
  local sum, oldest, current = '0', 0, '0'
  for k = 0, count - 1 do
    local value = strip(redis.call('HGET', KEYS[first + k], 'u') or '0')
    if k == 0 then
      current = value
    end
    if value ~= '0' then
      sum = add(sum, value)
      oldest = k + 1
    end
  end
  return sum, oldest, current
end

-- Ends the reply `out` with the usage of each of n ops, used_1..used_n, then the
-- position of each one's oldest counter that holds usage, oldest_1..oldest_n.
local function with_usage(out, used, oldest, n)
  for i = 1, n do
    out[#out + 1] = used[i]
  end
  for i = 1, n do
    out[#out + 1] = tostring(oldest[i])
  end
  return out
end
