-- idle_settle.lua: the room sweeper's answer for one entry of the idle index, only if the
-- entry is still the one it read (a room marked idle again meanwhile keeps its new mark).
-- KEYS[1] the idle index (ZSET room -> ms it was last seen becoming over)
-- ARGV[1] room  ARGV[2] the score read  ARGV[3] new score, or '' to remove the entry
-- returns 1 when changed, 0 when the entry had changed meanwhile
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '-1') ~= tonumber(ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
