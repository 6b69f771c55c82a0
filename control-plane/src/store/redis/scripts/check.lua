-- Check and count every limit of one request, at every level of its tenant chain,
-- atomically: either every limit stays within its cap and all are counted, or
-- nothing changes anywhere. In "read" mode nothing is ever written.
--
-- Every key shares the hash tag of one tenant tree, so the script runs on Redis Cluster.
--
-- ARGV[1]  mode: "check" or "read"
-- ARGV[2]  now, unix seconds (gauge holds expire against it)
-- ARGV[3]  M: the first M keys are seed markers, one per tenant of the chain. A missing
--          marker means this Redis has lost (or never had) that tenant's counters: the
--          script changes nothing and answers "seed", and the caller re-seeds them from
--          the persisted usage history before asking again.
-- ARGV[4]  seconds a marker lives; refreshed when a check counts the first usage of a
--          window (a new counter), so a marker always outlives its tenant's counters
-- ARGV[5]  N: the number of limits (ops)
-- ARGV[6]  index of the hold record key (0: none): the set of gauges this request holds
-- ARGV[7]  the request id ('' when none)
-- ARGV[8]  seconds a gauge hold lives
-- ARGV[9]  the caller's deadline, unix milliseconds ('0': none): a check that runs
--          after it changes nothing and answers "late"
-- ARGV[10] index of the check record key (0: none): an admitted check writes there what
--          it counted, one "<counter key>\t<amount>\n" line per window op, so that a
--          check the filter refused after all can be taken back. A record already there
--          is the mark of a take-back that came first (cancel.lua): the check changes
--          nothing and answers "late"
-- ARGV[11] milliseconds the check record lives
-- then, per op, 7 values: kind, first key index, key count, amount, cap, ttl seconds,
--          index of its tenant's marker (0: none)
--   kind "w", a windowed limit: its usage is the sum of field `u` of its keys (one
--            calendar window, or the buckets of a rolling window, current first); the
--            amount is added to the first key, which expires ttl seconds after it
--            starts counting.
--   kind "g", a gauge: one key, a sorted set of request ids by hold expiry; beside it
--            (the same key with ":g:" made ":h:") a hash of each holder's amount
--            ("r:<id>") and their total ("#").
--
-- Admits only if used + amount <= cap for every op: `fits` in protocol/src/decision.rs,
-- the rule Limit::decide rejects by, here in decimal strings.
-- Usage arithmetic is exact up to the counter maximum (2^63 - 1): the functions strip,
-- add, sub and le come from decimal.lua, window_usage and with_usage from window.lua,
-- reseed_reply from marker.lua, past_deadline from deadline.lua, all prepended to this
-- script.
--
-- Returns strings: { "late", "0", "0" }, or { status ("ok" | "reject" | "seed"), violated op (1-based, "0" if
-- none), K, K marker indices (for "seed"), used_1..used_N, oldest_1..oldest_N } where
-- used is after counting when admitted and unchanged otherwise, and oldest is the
-- position (1-based, "0" if none) of the oldest key of a window op that holds usage.

local mode = ARGV[1]
local now = tonumber(ARGV[2])
local n_markers = tonumber(ARGV[3])
local marker_ttl = tonumber(ARGV[4])
local n_ops = tonumber(ARGV[5])
local record_index = tonumber(ARGV[6])
local request_id = ARGV[7]
local hold_ttl = tonumber(ARGV[8])
local check_record = tonumber(ARGV[10])
local check_record_ttl = tonumber(ARGV[11])

if mode == 'check' and past_deadline(ARGV[9]) then
  return { 'late', '0', '0' }
end
-- Taken back before it ran (the take-back overtook it on its way): the filter refused
-- the request long ago.
if mode == 'check' and check_record > 0 and redis.call('EXISTS', KEYS[check_record]) == 1 then
  return { 'late', '0', '0' }
end

local reseed = reseed_reply(n_markers, { 'seed', '0' })
if reseed then
  return reseed
end

local ops = {}
for i = 1, n_ops do
  local base = 11 + (i - 1) * 7
  ops[i] = {
    kind = ARGV[base + 1],
    first = tonumber(ARGV[base + 2]),
    count = tonumber(ARGV[base + 3]),
    amount = strip(ARGV[base + 4]),
    cap = strip(ARGV[base + 5]),
    ttl = tonumber(ARGV[base + 6]),
    marker = tonumber(ARGV[base + 7]),
  }
end

local function holdings_key(holds)
  return (string.gsub(holds, '}:g:', '}:h:', 1))
end

-- Usage of each op now; for gauges, what this request already holds (a retried check
-- replaces its own hold instead of adding a second one) and the expired holds.
local used, oldest, held, expired, current = {}, {}, {}, {}, {}
for i = 1, n_ops do
  local op = ops[i]
  if op.kind == 'w' then
    used[i], oldest[i], current[i] = window_usage(op.first, op.count)
  else
    local holds = KEYS[op.first]
    local holdings = holdings_key(holds)
    local total = strip(redis.call('HGET', holdings, '#') or '0')
    local gone = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
    for k = 1, #gone do
      local amount = redis.call('HGET', holdings, 'r:' .. gone[k])
      if amount then
        total = sub(total, strip(amount))
      end
    end
    expired[i] = gone
    held[i] = '0'
    if request_id ~= '' then
      local mine = redis.call('ZSCORE', holds, request_id)
      if mine and tonumber(mine) > now then
        held[i] = strip(redis.call('HGET', holdings, 'r:' .. request_id) or '0')
      end
    end
    used[i] = total
    oldest[i] = 0
  end
end

local function reply(status, violated)
  return with_usage({ status, tostring(violated), '0' }, used, oldest, n_ops)
end

if mode == 'read' then
  return reply('ok', 0)
end

for i = 1, n_ops do
  local op = ops[i]
  local others = used[i]
  if op.kind == 'g' then
    others = sub(used[i], held[i])
  end
  if not le(add(others, op.amount), op.cap) then
    return reply('reject', i)
  end
end

local holds_gauge = false
local refresh = {}
for i = 1, n_ops do
  local op = ops[i]
  if op.kind == 'w' then
    if op.amount ~= '0' then
      local key = KEYS[op.first]
      redis.call('HINCRBY', key, 'u', op.amount)
      -- A counter's expiry is an instant (its window stops counting, plus a grace): set
      -- when it starts counting, it need not be set again by every check.
      if current[i] == '0' then
        redis.call('EXPIRE', key, op.ttl)
        if op.marker > 0 then
          refresh[op.marker] = true
        end
      end
      used[i] = add(used[i], op.amount)
      if oldest[i] == 0 then
        oldest[i] = 1
      end
    end
  else
    local holds = KEYS[op.first]
    local holdings = holdings_key(holds)
    for k = 1, #expired[i] do
      local amount = redis.call('HGET', holdings, 'r:' .. expired[i][k])
      if amount then
        redis.call('HINCRBY', holdings, '#', '-' .. strip(amount))
        redis.call('HDEL', holdings, 'r:' .. expired[i][k])
      end
      redis.call('ZREM', holds, expired[i][k])
    end
    if op.amount ~= '0' and request_id ~= '' then
      local before = held[i]
      redis.call('HINCRBY', holdings, '#', op.amount)
      if before ~= '0' then
        redis.call('HINCRBY', holdings, '#', '-' .. before)
      end
      redis.call('HSET', holdings, 'r:' .. request_id, op.amount)
      redis.call('ZADD', holds, now + hold_ttl, request_id)
      redis.call('EXPIRE', holds, hold_ttl)
      redis.call('EXPIRE', holdings, hold_ttl)
      used[i] = add(sub(used[i], before), op.amount)
      if record_index > 0 then
        redis.call('SADD', KEYS[record_index], holds)
        holds_gauge = true
      end
    end
  end
end
if holds_gauge then
  redis.call('EXPIRE', KEYS[record_index], hold_ttl)
end
for m in pairs(refresh) do
  redis.call('EXPIRE', KEYS[m], marker_ttl)
end
if check_record > 0 then
  local lines = {}
  for i = 1, n_ops do
    local op = ops[i]
    if op.kind == 'w' and op.amount ~= '0' then
      lines[#lines + 1] = KEYS[op.first] .. '\t' .. op.amount .. '\n'
    end
  end
  if #lines > 0 then
    redis.call('SET', KEYS[check_record], table.concat(lines), 'PX', check_record_ttl)
  end
end

return reply('ok', 0)
