-- presence_sync.lua: the users who arrived on and left this hub since its last call, in one
-- call per room and tick (a crowd joining or dropping at once is one call, not thousands).
-- include: lib_session.lua
-- KEYS[1] ref  KEYS[2] hubs  KEYS[3] this hub's user set  KEYS[4] meta  KEYS[5] names
-- KEYS[6] live  KEYS[7] live:hll (optional: while a session is live, arrivals go into its
-- viewers HyperLogLog and the count into its peak and timeline)
-- ARGV[1] hub id  ARGV[2] hub ttl ms  ARGV[3] number of arrivals n  ARGV[4] departures g
-- ARGV[5 .. 4+n] users now here, ARGV[5+n .. 4+n+g] users gone from this hub, then
-- (user, display name) pairs of arrivals, written to the names hash (online draws)
-- The hub's user set gates every change to the counts, so a call retried after a timeout
-- (which may have run) counts nobody twice. A hub left with no user in the room leaves its
-- `hubs` entry too, so an empty room keeps no trace of it. Returns the room's online count.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
local n, g = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 5, 4 + n do
  if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  end
end
for i = 5 + n + g, #ARGV, 2 do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
end
for i = 5 + n, 4 + n + g do
  if redis.call('SREM', KEYS[3], ARGV[i]) == 1 then
    if redis.call('HINCRBY', KEYS[1], ARGV[i], -1) <= 0 then
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
if n > 0 and session_live(KEYS[4], KEYS[6]) and KEYS[7] then
  redis.call('PFADD', KEYS[7], unpack(ARGV, 5, 4 + n))
end
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local online = redis.call('HLEN', KEYS[1])
session_online(KEYS[4], KEYS[6], online)
local peak = tonumber(redis.call('HGET', KEYS[4], 'peak') or '0')
if online > peak then
  redis.call('HSET', KEYS[4], 'peak', online)
end
return online
