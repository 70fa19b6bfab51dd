-- presence_join.lua: a user's first connection to the room on this hub.
-- KEYS[1] ref  KEYS[2] hubs  KEYS[3] this hub's user set  KEYS[4] meta
-- ARGV[1] user  ARGV[2] hub id  ARGV[3] hub ttl ms
-- returns the room's online count (distinct users, all hubs)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[2], now + tonumber(ARGV[3]))
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
local online = redis.call('HLEN', KEYS[1])
local peak = tonumber(redis.call('HGET', KEYS[4], 'peak') or '0')
if online > peak then
  redis.call('HSET', KEYS[4], 'peak', online)
end
return online
