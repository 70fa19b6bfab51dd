-- draw_start.lua: open a lucky draw in a room: stored and announced in one atomic step.
-- include: lib_publish.lua
-- include: lib_session.lua
-- include: lib_idem.lua
-- KEYS[1] draws  KEYS[2] entrants (of the open draw)  KEYS[3] meta  KEYS[4] hist
-- KEYS[5] live (optional: the draw counts in the live session's `draws`)
-- The draw records the live session (`<draw>:sess`, '' for none): exclude_winners leaves out
-- the users who won a draw of that same session (`won` members `<session>|<user>`; plain
-- `<user>` for draws started with no session live).
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack `draw_started` without seq)
-- ARGV[4] epoch candidate  ARGV[5] maxlen  ARGV[6] draw id  ARGV[7] info (msgpack public map)
-- ARGV[8] seed (hex)  ARGV[9] normalised keyword  ARGV[10] ends_at ms  ARGV[11] exclude (0|1)
-- KEYS[6] idempotency key (optional; ARGV[12] its TTL ms, lib_idem.lua)
-- returns {seq, epoch, draw id}, or {-1, 'draw_open'} while another draw of the room is not
-- closed; with a repeated idempotency key the first call's answer (its draw id), nothing written
local kept = idem_replay(KEYS[6])
if kept then
  return kept
end
local open = redis.call('HGET', KEYS[1], 'open')
if open and redis.call('HGET', KEYS[1], open .. ':status') ~= 'closed' then
  return {-1, 'draw_open'}
end
local id = ARGV[6]
if redis.call('HEXISTS', KEYS[1], id .. ':status') == 1 then
  return redis.error_reply('draw id already used')
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'open', id, id .. ':info', ARGV[7], id .. ':seed', ARGV[8], id .. ':kw', ARGV[9],
  id .. ':ends', ARGV[10], id .. ':excl', ARGV[11], id .. ':status', 'open',
  id .. ':sess', redis.call('HGET', KEYS[3], 'live') or '')
session_add(KEYS[3], KEYS[5], 'draws', 1, nil)
local out = publish_durable(KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return idem_keep(KEYS[6], ARGV[12], {out[1], out[2], id})
