-- room_mute.lua: mute (or unmute) a user in the room; with escalation, the user's next step
-- on the room's mute ladder, counted in the same atomic step.
-- include: lib_publish.lua
-- KEYS[1] mutes  KEYS[2] strikes
-- ARGV[1] user  ARGV[2] seconds (0 unmutes, -1 forever) or 'escalate'  ARGV[3..] the ladder (seconds, -1 forever)
-- returns {muted until ms (-1 forever, 0 unmuted), the step taken (0 without escalation)}
local secs
local step = 0
if ARGV[2] == 'escalate' then
  step = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  secs = tonumber(ARGV[2 + math.min(step, #ARGV - 2)])
else
  secs = tonumber(ARGV[2])
end
if secs == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {0, step}
end
local until_ms = -1
if secs > 0 then
  until_ms = now_ms() + secs * 1000
end
redis.call('HSET', KEYS[1], ARGV[1], until_ms)
return {until_ms, step}
