-- presence_beat.lua: this hub still holds viewers of the room; which hubs have died, and
-- are this hub's own users still counted?
-- KEYS[1] hubs  KEYS[2] ref  KEYS[3] meta  KEYS[4] this hub's user set
-- ARGV[1] hub id  ARGV[2] hub ttl ms  ARGV[3] users this hub holds here (-1: don't check)
-- returns {online, lost (1 when this hub's user set does not match: the hub registers
-- them again), dead hub id, ...}; the caller reaps each dead hub (presence_reap.lua)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local expect = tonumber(ARGV[3])
local lost = 0
if expect >= 0 and redis.call('SCARD', KEYS[4]) ~= expect then
  lost = 1
end
local out = {redis.call('HLEN', KEYS[2]), lost}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] and tonumber(all[i + 1]) < now then
    out[#out + 1] = all[i]
  end
end
local peak = tonumber(redis.call('HGET', KEYS[3], 'peak') or '0')
if out[1] > peak then
  redis.call('HSET', KEYS[3], 'peak', out[1])
end
return out
