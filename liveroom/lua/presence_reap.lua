-- presence_reap.lua: remove every user a hub held (a dead hub, or this one shutting down).
-- KEYS[1] ref  KEYS[2] hubs  KEYS[3] that hub's user set
-- ARGV[1] that hub's id
-- returns the room's online count
local users = redis.call('SMEMBERS', KEYS[3])
for _, user in ipairs(users) do
  if redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then
    redis.call('HDEL', KEYS[1], user)
  end
end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HLEN', KEYS[1])
