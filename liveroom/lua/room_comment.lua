-- room_comment.lua: a viewer's comment, refused if the user is muted or too fast.
-- include: lib_publish.lua
-- include: lib_session.lua
-- include: lib_idem.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] mutes  KEYS[4] the user's rate bucket in this room
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack event without seq)
-- ARGV[4] epoch candidate  ARGV[5] history maxlen  ARGV[6] user id
-- ARGV[7] comments/s allowed (0 = no limit)  ARGV[8] burst
-- Keyword draws (optional, KEYS[5..8] draws, entrants, names, won; ARGV[9] the comment
-- normalised by core/rules.py `normalise`, ARGV[10] the user's display name): a comment
-- that contains the open keyword draw's (normalised) keyword enters its author, in the
-- same atomic step as the comment (a plain substring find: Python normalised both).
-- Live session (optional, KEYS[9] live): counts the comment in the live session's figures.
-- Idempotency (optional, KEYS[10], ARGV[11] its TTL ms; lib_idem.lua): a retry with the same
-- key answers the first {seq, epoch} and publishes nothing.
-- returns {seq, epoch}, {-1, muted_until_ms} (-1 = forever) when the user is muted, or
-- {-2, 0} when the user is over the rate (counted over all hubs: a user with sockets on
-- several hubs gets one allowance, not one per hub)
local kept = idem_replay(KEYS[10])
if kept then
  return kept
end
local muted = redis.call('HGET', KEYS[3], ARGV[6])
if muted then
  muted = tonumber(muted)
  if muted < 0 or muted > now_ms() then
    return {-1, muted}
  end
  redis.call('HDEL', KEYS[3], ARGV[6])
end
local rate, burst = tonumber(ARGV[7]), tonumber(ARGV[8])
if rate > 0 then
  local now = now_ms()
  local st = redis.call('HMGET', KEYS[4], 't', 's')
  local tokens = burst
  if st[1] then
    tokens = math.min(burst, tonumber(st[1]) + (now - tonumber(st[2])) * rate / 1000)
  end
  if tokens < 1 then
    return {-2, 0}
  end
  redis.call('HSET', KEYS[4], 't', tostring(tokens - 1), 's', now)
  -- gone once it would be full again anyway
  redis.call('PEXPIRE', KEYS[4], math.ceil(burst / rate * 1000) + 1000)
end
redis.call('HINCRBY', KEYS[1], 'comments', 1)
session_add(KEYS[1], KEYS[9], 'comments', 1, 'comments')
if KEYS[5] and ARGV[9] ~= '' then
  local id = redis.call('HGET', KEYS[5], 'open')
  if id then
    local kw = redis.call('HGET', KEYS[5], id .. ':kw')
    if kw and kw ~= '' and redis.call('HGET', KEYS[5], id .. ':status') == 'open'
      and now_ms() < tonumber(redis.call('HGET', KEYS[5], id .. ':ends'))
      and string.find(ARGV[9], kw, 1, true)
      and (redis.call('HGET', KEYS[5], id .. ':excl') ~= '1'
        or redis.call('SISMEMBER', KEYS[8], won_member(redis.call('HGET', KEYS[5], id .. ':sess'), ARGV[6])) == 0) then
      redis.call('ZADD', KEYS[6], 'NX', 0, ARGV[6])
      redis.call('HSET', KEYS[7], ARGV[6], ARGV[10])
    end
  end
end
return idem_keep(KEYS[10], ARGV[11], publish_durable(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]))
