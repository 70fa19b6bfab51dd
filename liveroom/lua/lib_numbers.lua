-- lib_numbers.lua: the check every script that adds a stored number makes before its first
-- write (Redis does not roll a script back: a write then a failed HINCRBY is half a buy).
-- Not a script on its own: scripts.py prepends it to those that `-- include: lib_numbers.lua`.
--
-- int_in(v, lo, hi): v is a number, an integer, and lo <= v <= hi
local function int_in(v, lo, hi)
  return type(v) == 'number' and v == math.floor(v) and v >= lo and v <= hi
end
