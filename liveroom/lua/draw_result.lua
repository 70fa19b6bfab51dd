-- draw_result.lua: store a draw's result and announce it, only if none is stored yet
-- (two hubs racing to close one draw never publish two results).
-- include: lib_publish.lua
-- KEYS[1] draws  KEYS[2] entrants (open draw)  KEYS[3] this draw's entrants (after the close)
-- KEYS[4] meta  KEYS[5] hist  KEYS[6] (online draws) the claimant's sorted pool LIST
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack `draw_result` without seq)
-- ARGV[4] epoch candidate  ARGV[5] maxlen  ARGV[6] draw id  ARGV[7] result (msgpack)
-- ARGV[8] how many entrants the result was computed over
-- The winners are added to the room's `won` set afterwards, 1,000 per SADD, by whichever
-- hub settles the draw (10,000 SADDs here held the shard ~20 ms: bench/RESULTS.md).
-- returns {seq, epoch}, {-1, 'closed'} when a result is already stored, or {-2, 'changed'}
-- when the entrants changed since they were read (the claimant reads them again)
local id = ARGV[6]
local status = redis.call('HGET', KEYS[1], id .. ':status')
if not status then
  return {-1, 'no_such_draw'}
end
if status == 'closed' then
  return {-1, 'closed'}
end
if not KEYS[6] and redis.call('ZCARD', KEYS[2]) ~= tonumber(ARGV[8]) then
  return {-2, 'changed'}
end
redis.call('HSET', KEYS[1], id .. ':status', 'closed', id .. ':result', ARGV[7])
redis.call('HDEL', KEYS[1], id .. ':claim')
if redis.call('HGET', KEYS[1], 'open') == id then
  redis.call('HDEL', KEYS[1], 'open')
end
if KEYS[6] then
  redis.call('DEL', KEYS[2])  -- nobody enters an online draw by hand: empty
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('RENAME', KEYS[6], KEYS[3])
  end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[3])
end
return publish_durable(KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
