-- live_end.lua: end the room's live session: its figures move to the session's own keys,
-- which expire after the retention period; the `live` ended event is published.
-- include: lib_publish.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] live  KEYS[4] live:hll  KEYS[5] session:<id>
-- KEYS[6] session:<id>:hll  KEYS[7] sessions (ZSET id -> started_at)  KEYS[8] ref
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack `live` ended event without seq)
-- ARGV[4] epoch candidate  ARGV[5] maxlen  ARGV[6] session id  ARGV[7] ended_at ms
-- ARGV[8] retention ms  ARGV[9] idle ms: 0 ends now; > 0 ends only if the room has no
-- viewer and has had none for that long (the idle close)
-- returns {seq, ended_at} when ended now; {0, ended_at} when it had ended already (its
-- retention is refreshed); {-1, 0} not a session of this room (or expired); {-2, 0} not idle
if redis.call('HGET', KEYS[1], 'live') ~= ARGV[6] then
  local ended = redis.call('HGET', KEYS[5], 'ended_at')
  if ended then
    redis.call('PEXPIRE', KEYS[5], ARGV[8])
    redis.call('PEXPIRE', KEYS[6], ARGV[8])
    return {0, tonumber(ended)}
  end
  return {-1, 0}
end
local now = now_ms()
if tonumber(ARGV[9]) > 0 then
  if redis.call('HLEN', KEYS[8]) > 0 then return {-2, 0} end
  local seen = tonumber(redis.call('HGET', KEYS[3], 'seen') or '0')
  if now - seen < tonumber(ARGV[9]) then return {-2, 0} end
end
redis.call('HDEL', KEYS[1], 'live', 'live_at')
redis.call('HSET', KEYS[3], 'id', ARGV[6], 'ended_at', ARGV[7])
redis.call('RENAME', KEYS[3], KEYS[5])
redis.call('PEXPIRE', KEYS[5], ARGV[8])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('RENAME', KEYS[4], KEYS[6])
  redis.call('PEXPIRE', KEYS[6], ARGV[8])
end
-- the index forgets sessions whose figures have expired
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. (now - tonumber(ARGV[8])))
local out = publish_durable(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return {out[1], tonumber(ARGV[7])}
