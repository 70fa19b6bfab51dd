-- room_publish.lua: a durable room event (notice, pin, comment_deleted, ...), optionally
-- recording one meta field in the same step (the pinned product, for late joiners).
-- include: lib_publish.lua
-- include: lib_idem.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] idempotency key (optional; ARGV[8] its TTL ms, lib_idem.lua)
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body  ARGV[4] epoch candidate  ARGV[5] maxlen
-- ARGV[6] meta field to set ('' = none)  ARGV[7] its value ('' = delete the field)
-- returns {seq, epoch} (a repeated idempotency key: the first answer, nothing published)
local kept = idem_replay(KEYS[3])
if kept then
  return kept
end
if ARGV[6] ~= '' then
  if ARGV[7] == '' then
    redis.call('HDEL', KEYS[1], ARGV[6])
  else
    redis.call('HSET', KEYS[1], ARGV[6], ARGV[7])
  end
end
return idem_keep(KEYS[3], ARGV[8], publish_durable(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]))
