-- live_start.lua: start a live session in the room, or answer the one running.
-- include: lib_publish.lua
-- include: lib_session.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] live (figures of the live session)
-- KEYS[4] live:hll (its viewers)  KEYS[5] sessions (ZSET id -> started_at)  KEYS[6] ref
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack `live` event without seq)
-- ARGV[4] epoch candidate  ARGV[5] maxlen  ARGV[6] session id  ARGV[7] started_at ms
-- returns {seq, id, started_at} when started now, {0, id, started_at} of the session
-- already live (nothing written)
local cur = redis.call('HGET', KEYS[1], 'live')
if cur then
  return {0, cur, tonumber(redis.call('HGET', KEYS[1], 'live_at') or '0')}
end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'live', ARGV[6], 'live_at', ARGV[7])
redis.call('HSET', KEYS[3], 'id', ARGV[6], 'started_at', ARGV[7], 'seen', ARGV[7])
redis.call('ZADD', KEYS[5], tonumber(ARGV[7]), ARGV[6])
-- the users already present are the session's first viewers (1,000 per step)
local cursor = '0'
repeat
  local r = redis.call('HSCAN', KEYS[6], cursor, 'COUNT', 1000)
  cursor = r[1]
  local users = {}
  for i = 1, #r[2], 2 do users[#users + 1] = r[2][i] end
  if #users > 0 then redis.call('PFADD', KEYS[4], unpack(users)) end
until cursor == '0'
session_online(KEYS[1], KEYS[3], redis.call('HLEN', KEYS[6]))
local out = publish_durable(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return {out[1], ARGV[6], tonumber(ARGV[7])}
