-- Whether the caller has given up: `deadline_ms` (unix milliseconds, '0' for none) has
-- passed by this Redis's clock. A call that waited behind a slow or blocked Redis must
-- count nothing, since the filter has applied its failure mode meanwhile.
local function past_deadline(deadline_ms)
  local deadline = tonumber(deadline_ms)
  if not deadline or deadline <= 0 then
    return false
  end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > deadline
end

