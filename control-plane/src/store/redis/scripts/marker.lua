-- Seed markers, prepended to the scripts that count or settle: a missing marker means
-- this Redis lost (or never had) a tenant's counters, and nothing may be counted or
-- corrected from zero until the caller re-seeds them from the usage history.

-- When some of the markers KEYS[1..n_markers] are missing: the reply asking for a
-- re-seed, `head` followed by how many are missing and their 1-based indices. nil when
-- every marker exists.
local function reseed_reply(n_markers, head)
  local missing = {}
  for m = 1, n_markers do
    if redis.call('EXISTS', KEYS[m]) == 0 then
      missing[#missing + 1] = tostring(m)
    end
  end
  if #missing == 0 then
    return nil
  end
  local out = head
  out[#out + 1] = tostring(#missing)
  for k = 1, #missing do
    out[#out + 1] = missing[k]
  end
  return out
end
