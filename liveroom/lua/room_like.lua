-- room_like.lua: add one hub's taps of the last tick to the room total and tell every hub;
-- fire the likes milestones the new total crosses.
-- include: lib_publish.lua
-- include: lib_milestones.lua
-- include: lib_session.lua
-- KEYS[1] meta  KEYS[2] hist  KEYS[3] milestones  KEYS[4] live (optional: the live session's figures)
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] taps to add  ARGV[4] epoch candidate  ARGV[5] maxlen
-- Flush ids (optional, KEYS[5] hub -> its last flush id counted; ARGV[6] hub id, ARGV[7] this
-- flush's id, ARGV[8] TTL ms): a hub sends a flush that timed out again, with the same id,
-- before any other; if it had run, the repeat adds nothing and answers the total.
-- returns {new total, {ids of fired milestones that start a draw}}; publishes "L<total>"
-- (ephemeral: latest value wins) and a durable `milestone` event per milestone crossed
if KEYS[5] then
  if redis.call('HGET', KEYS[5], ARGV[6]) == ARGV[7] then
    return {tonumber(redis.call('HGET', KEYS[1], 'likes') or '0'), {}}
  end
  redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
  redis.call('PEXPIRE', KEYS[5], ARGV[8])
end
local total = redis.call('HINCRBY', KEYS[1], 'likes', ARGV[3])
redis.call(ARGV[1], ARGV[2], 'L' .. total)
session_add(KEYS[1], KEYS[4], 'likes', tonumber(ARGV[3]), 'likes')
local draws = {}
if redis.call('EXISTS', KEYS[3]) == 1 then
  draws = check_milestones(KEYS[3], 'likes', total - tonumber(ARGV[3]), total, KEYS[1], KEYS[2],
    ARGV[1], ARGV[2], ARGV[4], ARGV[5])
end
return {total, draws}
