-- Give back a lease's budget and reserve the next one (POST /v1/leases), in one atomic
-- step over every level of the tenant's chain. A budget is usage counted ahead: it is
-- added to the same counters a check of that amount would count in, so budgets
-- outstanding can never let usage pass a hard limit. What comes back unspent is
-- refunded.
--
-- Every key shares the hash tag of one tenant tree, so the script runs on Redis Cluster.
-- The counters a budget charged are read from its record: they share its hash tag.
--
-- KEYS[1..M]      seed markers, one per tenant whose counters are charged. A missing
--                 marker means this Redis lost that tenant's counters: the script
--                 changes nothing and answers "seed", and the caller re-seeds them from
--                 the usage history first (nothing is counted or refunded from zero).
-- KEYS[M+1..M+K]  the counters of the resource's limits (see the ops below)
-- KEYS[M+K+1]     the new lease's budget record, a hash: `g` granted, `w` gateway, `x`
--                 expiry (unix ms), `k` the counters charged, one per line; or only
--                 `r`, the mark of a lease returned (kept as long as a record): a
--                 return can overtake its own grant on the way, and that grant must
--                 then reserve nothing
-- KEYS[M+K+2..M+K+L+1]  per level whose enforced limits bound the grant, its budget
--                 holders: a sorted set of `gateway|tenant` ids, one per gateway and
--                 tenant at or below the level holding a budget of the resource, by the
--                 expiry of their lease (unix ms)
-- KEYS[M+K+L+2]   the previous lease's record, when ARGV[10] is not ''
-- ARGV[1]   M
-- ARGV[2]   seconds a marker lives (refreshed when a reservation starts a counter)
-- ARGV[3]   N: the number of limits (ops)
-- ARGV[4]   now, unix milliseconds
-- ARGV[5]   the most to grant (0: grant nothing)
-- ARGV[6]   the least grant worth a lease: a smaller one is 0
-- ARGV[7]   milliseconds the budget may be spent
-- ARGV[8]   milliseconds its record lives (longer: a late return still finds it)
-- ARGV[9]   the gateway id
-- ARGV[10]  what was spent of the previous lease ('' when none is returned)
-- ARGV[11]  the asker's id in the holders sets: `gateway|tenant`
-- ARGV[12]  L: the number of levels
-- ARGV[13]  the caller's deadline, unix milliseconds ('0': none): run after it, the
--           call still gives back the previous lease but grants nothing
-- then, per op, 5 values: first key index, key count, cap, ttl seconds, marker index
--   (0: none). An op's usage is the sum of field `u` of its keys (one calendar window,
--   or the buckets of a rolling window, current first); a reservation is added to the
--   first key, which lives ttl seconds from when it starts counting. The grant keeps
--   every op within its cap.
-- then, per level, its op count C and C op indices (1-based): the level's enforced
--   limits, whose least room is its headroom.
--
-- Arithmetic: decimal.lua; window_usage, with_usage: window.lua; take_back: refund.lua;
-- reseed_reply: marker.lua; past_deadline: deadline.lua — all prepended.
-- Returns strings: { "seed", K, K marker indices }, { "overspent", granted } (the
-- previous lease reported spending more than it was granted: nothing changed), or
-- { status, refunded, granted, ttl ms, violated op (1-based, "0" if none), R, R refunded
-- counters, used_1..used_N, oldest_1..oldest_N } where status is "ok" (reserved now,
-- possibly 0), "duplicate" (this lease id was granted before: its grant and what is left
-- of its time, nothing reserved again) or "exhausted" (an op has no headroom: nothing
-- reserved), used is the usage before this lease's own reservation, and oldest the
-- position (1-based, "0" if none) of an op's oldest key that holds usage.

local n_markers = tonumber(ARGV[1])
local marker_ttl = tonumber(ARGV[2])
local n_ops = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local want = strip(ARGV[5])
local min_grant = strip(ARGV[6])
local ttl = tonumber(ARGV[7])
local record_ttl = tonumber(ARGV[8])
local gateway = ARGV[9]
local spent = ARGV[10]
local holder = ARGV[11]
local n_levels = tonumber(ARGV[12])
if past_deadline(ARGV[13]) then
  want = '0'
end

local ops = {}
local n_keys = 0
for i = 1, n_ops do
  local base = 13 + (i - 1) * 5
  ops[i] = {
    first = tonumber(ARGV[base + 1]),
    count = tonumber(ARGV[base + 2]),
    cap = strip(ARGV[base + 3]),
    ttl = tonumber(ARGV[base + 4]),
    marker = tonumber(ARGV[base + 5]),
  }
  n_keys = n_keys + ops[i].count
end
local record = KEYS[n_markers + n_keys + 1]
local levels = {}
local arg = 13 + n_ops * 5
for l = 1, n_levels do
  local count = tonumber(ARGV[arg + 1])
  local members = {}
  for j = 1, count do
    members[j] = tonumber(ARGV[arg + 1 + j])
  end
  levels[l] = { holders = KEYS[n_markers + n_keys + 1 + l], ops = members }
  arg = arg + 1 + count
end

-- The asker holds no budget at any level.
local function let_go()
  for l = 1, n_levels do
    redis.call('ZREM', levels[l].holders, holder)
  end
end

local reseed = reseed_reply(n_markers, { 'seed' })
if reseed then
  return reseed
end

-- 1. The previous lease: its unspent part back to the counters it charged, once.
local refunded, refunded_keys = '0', {}
if spent ~= '' then
  local previous = KEYS[n_markers + n_keys + n_levels + 2]
  local fields = redis.call('HMGET', previous, 'g', 'k')
  if fields[1] then
    local granted = strip(fields[1])
    spent = strip(spent)
    if not le(spent, granted) then
      return { 'overspent', granted }
    end
    refunded = sub(granted, spent)
    if refunded ~= '0' then
      for key in string.gmatch(fields[2] or '', '[^\n]+') do
        local value = strip(redis.call('HGET', key, 'u') or '0')
        if value ~= '0' then
          take_back(key, value, refunded)
          refunded_keys[#refunded_keys + 1] = key
        end
      end
    end
  end
  redis.call('DEL', previous)
  redis.call('HSET', previous, 'r', '1')
  redis.call('PEXPIRE', previous, record_ttl)
end

-- Usage of each op now.
local used, oldest, current = {}, {}, {}
for i = 1, n_ops do
  used[i], oldest[i], current[i] = window_usage(ops[i].first, ops[i].count)
end

local function reply(status, granted, left, violated)
  local out = { status, refunded, granted, string.format('%.0f', left), tostring(violated),
    tostring(#refunded_keys) }
  for k = 1, #refunded_keys do
    out[#out + 1] = refunded_keys[k]
  end
  return with_usage(out, used, oldest, n_ops)
end

-- 2. A lease returned before it was granted: nothing to reserve.
local mine = redis.call('HMGET', record, 'g', 'x', 'k', 'r')
if mine[4] then
  let_go()
  return reply('ok', '0', ttl, 0)
end
-- A retry of a lease granted before: the same answer, nothing reserved again.
if mine[1] then
  local granted = strip(mine[1])
  local charged = {}
  for key in string.gmatch(mine[3] or '', '[^\n]+') do
    charged[key] = true
  end
  for i = 1, n_ops do
    if charged[KEYS[ops[i].first]] then
      if le(used[i], granted) then
        used[i] = '0'
      else
        used[i] = sub(used[i], granted)
      end
    end
  end
  return reply('duplicate', granted, math.max(0, tonumber(mine[2]) - now), 0)
end

-- 3. The headroom: the least room any op has left under its cap.
local rooms = {}
local headroom, binding = nil, 0
for i = 1, n_ops do
  local room = '0'
  if le(used[i], ops[i].cap) then
    room = sub(ops[i].cap, used[i])
  end
  rooms[i] = room
  if headroom == nil or not le(headroom, room) then
    headroom, binding = room, i
  end
end
if headroom == '0' then
  let_go()
  return reply('exhausted', '0', 0, binding)
end

-- 4. The grant: at each level, a share of the level's headroom for each budget held at
-- or below it (the asker's included); never more than the headroom of an op in no level.
local granted = want
if headroom and not le(granted, headroom) then
  granted = headroom
end
for l = 1, n_levels do
  local level = levels[l]
  redis.call('ZREMRANGEBYSCORE', level.holders, '-inf', now)
  local holders = redis.call('ZCARD', level.holders)
  if not redis.call('ZSCORE', level.holders, holder) then
    holders = holders + 1
  end
  local room = nil
  for _, i in ipairs(level.ops) do
    if room == nil or not le(room, rooms[i]) then
      room = rooms[i]
    end
  end
  local share = div(room, 2 * holders)
  if not le(granted, share) then
    granted = share
  end
end
if not le(min_grant, granted) then
  granted = '0'
end
if granted == '0' then
  let_go()
  return reply('ok', '0', ttl, 0)
end

-- 5. The reservation, at every level, and its record.
local charged = {}
local refresh = {}
for i = 1, n_ops do
  local op = ops[i]
  local key = KEYS[op.first]
  redis.call('HINCRBY', key, 'u', granted)
  -- Its expiry is an instant, set when it starts counting (as in check.lua).
  if current[i] == '0' then
    redis.call('EXPIRE', key, op.ttl)
    if op.marker > 0 then
      refresh[op.marker] = true
    end
  end
  charged[#charged + 1] = key
end
for m in pairs(refresh) do
  redis.call('EXPIRE', KEYS[m], marker_ttl)
end
local expiry = string.format('%.0f', now + ttl)
redis.call('HSET', record, 'g', granted, 'w', gateway, 'x', expiry, 'k',
  table.concat(charged, '\n'))
redis.call('PEXPIRE', record, record_ttl)
for l = 1, n_levels do
  local holders = levels[l].holders
  redis.call('ZADD', holders, expiry, holder)
  if redis.call('PTTL', holders) < ttl then
    redis.call('PEXPIRE', holders, math.max(1, ttl))
  end
end
return reply('ok', granted, ttl, 0)
