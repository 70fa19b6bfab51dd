-- presence_beat.lua: this hub still holds viewers of the room; which hubs have died, are
-- this hub's own users still counted, and has the online count crossed a milestone?
-- include: lib_publish.lua
-- include: lib_milestones.lua
-- include: lib_session.lua
-- KEYS[1] hubs  KEYS[2] ref  KEYS[3] meta  KEYS[4] this hub's user set  KEYS[5] hist
-- KEYS[6] milestones  KEYS[7] live (optional: the live session's peak, timeline, last seen)
-- ARGV[1] hub id  ARGV[2] hub ttl ms  ARGV[3] users this hub holds here (-1: don't check)
-- ARGV[4] pubcmd  ARGV[5] channel  ARGV[6] epoch candidate  ARGV[7] maxlen
-- returns {online, lost (1 when this hub's user set does not match: the hub registers
-- them again), {dead hub id, ...}, {ids of fired milestones that start a draw}}; the
-- caller reaps each dead hub (presence_reap.lua). Online milestones are checked against
-- the highest count they have seen (meta ms_online), once a beat: within a second.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expect = tonumber(ARGV[3])
-- a hub holding nobody here (an empty room in its grace) keeps no `hubs` entry
if expect ~= 0 then
  redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local lost = 0
if expect >= 0 and redis.call('SCARD', KEYS[4]) ~= expect then
  lost = 1
end
local online = redis.call('HLEN', KEYS[2])
local dead = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] and tonumber(all[i + 1]) < now then
    dead[#dead + 1] = all[i]
  end
end
local peak = tonumber(redis.call('HGET', KEYS[3], 'peak') or '0')
if online > peak then
  redis.call('HSET', KEYS[3], 'peak', online)
end
session_online(KEYS[3], KEYS[7], online)
local draws = {}
if redis.call('EXISTS', KEYS[6]) == 1 then
  local seen = tonumber(redis.call('HGET', KEYS[3], 'ms_online') or '0')
  if online > seen then
    redis.call('HSET', KEYS[3], 'ms_online', online)
    draws = check_milestones(KEYS[6], 'online', seen, online, KEYS[3], KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  end
end
return {online, lost, dead, draws}
