-- Taking back usage a counter was charged and not used, prepended (after decimal.lua) to
-- the scripts that refund: a settlement's negative amount, a lease's unspent budget.

-- Takes `amount` back from the counter `key` whose usage is `value` (not "0"), never
-- below zero. Its epoch is bumped (usage went down: a snapshot taken before must not win
-- in the usage history) and its expiry is kept. Returns the usage left.
local function take_back(key, value, amount)
  local rest = '0'
  if not le(value, amount) then
    rest = sub(value, amount)
  end
  redis.call('HSET', key, 'u', rest)
  redis.call('HINCRBY', key, 'e', 1)
  return rest
end
