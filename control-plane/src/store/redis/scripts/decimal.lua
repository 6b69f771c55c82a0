-- Exact arithmetic on non-negative decimal strings, prepended to the scripts that count.
--
-- Redis Lua numbers are doubles, exact only to 2^53; counters go to 2^63 - 1, so usage
-- is added, subtracted and compared as canonical decimal strings (no leading zeros).

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

-- a - b, for a >= b.
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

-- a <= b, byte by byte (no locale).
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


-- a / d rounded down, for a whole number 0 < d < 2^49 (each step stays exact).
local function div(a, d)
  local digits = {}
  local rest = 0
  for k = 1, #a do
    local x = rest * 10 + string.byte(a, k) - 48
    local q = math.floor(x / d)
    digits[#digits + 1] = string.char(48 + q)
    rest = x - q * d
  end
  return strip(table.concat(digits))
end
