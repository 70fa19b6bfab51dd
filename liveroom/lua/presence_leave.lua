-- presence_leave.lua: a user's last connection to the room on this hub has gone.
-- KEYS[1] ref  KEYS[2] this hub's user set
-- ARGV[1] user
-- returns the room's online count; the user stays counted while another hub holds them
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
return redis.call('HLEN', KEYS[1])
