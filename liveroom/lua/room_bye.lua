-- room_bye.lua: a host sends a user away from the room on every hub (kick, ban), and keeps
-- or lifts the ban in the same atomic step.
-- KEYS[1] bans
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] user  ARGV[4] bye reason (kicked | banned; '' sends none)
-- ARGV[5] the ban: '' leaves it as it is (a kick), '0' lifts it, else banned until ms (-1 forever)
-- Publishes "B<reason> <user>": every hub closes its own sockets of that user in the room.
if ARGV[5] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[3])
elseif ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
end
if ARGV[4] ~= '' then
  redis.call(ARGV[1], ARGV[2], 'B' .. ARGV[4] .. ' ' .. ARGV[3])
end
return 1
