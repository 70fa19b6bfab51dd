-- sale_create.lua: open a flash sale (or a coupon grab: price 0) in a room.
-- include: lib_publish.lua
-- include: lib_numbers.lua
-- include: lib_idem.lua
-- KEYS[1] sales (room HASH: <sid>:info|stock|status|n)  KEYS[2] meta  KEYS[3] hist
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] body (msgpack `sale` event without seq)
-- ARGV[4] epoch candidate  ARGV[5] maxlen  ARGV[6] sale id  ARGV[7] info (msgpack)
-- ARGV[8] stock  KEYS[4] sales:open (SET of sale ids that may take buys: what a join reads)
-- KEYS[5] idempotency key (optional; ARGV[9] its TTL ms, lib_idem.lua)
-- returns {seq, epoch, sale id}: with a repeated idempotency key, the first call's (its sale
-- id, not ARGV[6]) and nothing is written
-- All or nothing: the numbers are checked before the first write (the edge checks them too:
-- protocol/frames.py), a bad one answers an error and writes nothing
local kept = idem_replay(KEYS[5])
if kept then
  return kept
end
local sid = ARGV[6]
local BIG = 9007199254740992 -- 2^53
local info = cmsgpack.unpack(ARGV[7])
local stock = tonumber(ARGV[8])
if type(info) ~= 'table' or not int_in(stock, 1, 10000000) or not int_in(info.price, 0, 10000000000)
    or not int_in(info.limit, 1, 10000000) or info.price * info.limit >= BIG
    or not int_in(info.starts_at, 0, BIG) or not int_in(info.ends_at, 0, BIG) then
  return redis.error_reply('bad_field: sale numbers out of bounds')
end
if redis.call('HEXISTS', KEYS[1], sid .. ':status') == 1 then
  return redis.error_reply('sale id already used')
end
redis.call('HSET', KEYS[1], sid .. ':info', ARGV[7], sid .. ':stock', ARGV[8], sid .. ':status', 'open', sid .. ':n', 0)
redis.call('SADD', KEYS[4], sid)
local out = publish_durable(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return idem_keep(KEYS[5], ARGV[9], {out[1], out[2], sid})
