-- room_admit.lua: what a handshake needs to know of the room, in one round trip (read only).
-- KEYS[1] info  KEYS[2] meta  KEYS[3] bans
-- ARGV[1] user ('' for an anonymous viewer: never banned by id)
-- returns {exists (0/1), banned until ms (-1 forever) or false}
local exists = redis.call('EXISTS', KEYS[1], KEYS[2])
local banned = false
if ARGV[1] ~= '' then
  banned = redis.call('HGET', KEYS[3], ARGV[1])
end
return {exists, banned}
