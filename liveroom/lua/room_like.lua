-- room_like.lua: add one hub's taps of the last tick to the room total and tell every hub.
-- KEYS[1] meta
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] taps to add
-- returns the new total; publishes "L<total>" (ephemeral: latest value wins)
local total = redis.call('HINCRBY', KEYS[1], 'likes', ARGV[3])
redis.call(ARGV[1], ARGV[2], 'L' .. total)
return total
