-- room_comment.lua: a viewer's comment, refused if the user is muted.
-- include: lib_publish.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] mutes
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack event without seq)
-- ARGV[4] epoch candidate  ARGV[5] history maxlen  ARGV[6] user id
-- returns {seq, epoch}, or {-1, muted_until_ms} (-1 = forever) when the user is muted
local muted = redis.call('HGET', KEYS[3], ARGV[6])
if muted then
  muted = tonumber(muted)
  if muted < 0 or muted > now_ms() then
    return {-1, muted}
  end
  redis.call('HDEL', KEYS[3], ARGV[6])
end
redis.call('HINCRBY', KEYS[1], 'comments', 1)
return publish_durable(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
