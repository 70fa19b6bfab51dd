-- draw_join.lua: a signed-in user enters the open `join` draw (once, however often asked).
-- include: lib_session.lua
-- KEYS[1] draws  KEYS[2] entrants  KEYS[3] names  KEYS[4] won
-- ARGV[1] draw id  ARGV[2] user  ARGV[3] display name
-- returns {'ok', 1 (entered now) | 0 (already in)} or {'err', code, detail}
local id = ARGV[1]
local status = redis.call('HGET', KEYS[1], id .. ':status')
if not status then
  return {'err', 'no_such_draw', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if status ~= 'open' or now >= tonumber(redis.call('HGET', KEYS[1], id .. ':ends')) then
  return {'err', 'closed', ''}
end
if redis.call('HGET', KEYS[1], id .. ':kw') ~= '' then
  return {'err', 'bad_field', 'draw: this draw is entered by commenting its keyword'}
end
local info = cmsgpack.unpack(redis.call('HGET', KEYS[1], id .. ':info'))
if info.mode ~= 'join' then
  return {'err', 'bad_field', 'draw: everyone in the room at the close enters this draw'}
end
local sess = redis.call('HGET', KEYS[1], id .. ':sess') or ''
local won = won_member(sess, ARGV[2]) -- won in this live session (or, with none, in this room)
if redis.call('HGET', KEYS[1], id .. ':excl') == '1' and redis.call('SISMEMBER', KEYS[4], won) == 1 then
  return {'err', 'forbidden', sess ~= '' and 'you have already won a draw in this live session' or 'you have already won a draw in this room'}
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return {'ok', redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[2])}
