-- presence_reap.lua: remove every user a hub held (a dead hub, or this one shutting down).
-- KEYS[1] ref  KEYS[2] hubs  KEYS[3] that hub's user set
-- ARGV[1] that hub's id  ARGV[2] '1': only if that hub's heartbeat has expired (another hub
-- reaping it: it may have come back since the beat that found it dead)
-- returns the room's online count
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  local at = redis.call('HGET', KEYS[2], ARGV[1])
  if at and tonumber(at) >= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return redis.call('HLEN', KEYS[1])
  end
end
local users = redis.call('SMEMBERS', KEYS[3])
for _, user in ipairs(users) do
  if redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then
    redis.call('HDEL', KEYS[1], user)
  end
end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HLEN', KEYS[1])
