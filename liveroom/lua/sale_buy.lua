-- sale_buy.lua: one buy, all or nothing. The only place stock is taken.
-- include: lib_publish.lua
-- include: lib_session.lua
-- include: lib_numbers.lua
-- KEYS[1] sales  KEYS[2] bought:<sid> (user -> units held)  KEYS[3] idem:<sid> (key -> answer)
-- KEYS[4] orders (HASH oid -> JSON)  KEYS[5] pending (ZSET oid -> pay deadline ms)
-- KEYS[6] orders stream  KEYS[7] meta  KEYS[8] hist  KEYS[9] live (optional: the order counts in
-- the live session's figures, and the order records its `session`)
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] sale id  ARGV[4] user  ARGV[5] qty
-- ARGV[6] idempotency field  ARGV[7] order id prefix  ARGV[8] pay window ms
-- ARGV[9] epoch candidate  ARGV[10] maxlen  ARGV[11] room  ARGV[12] client key
-- ARGV[13] the `sold_out` event (msgpack, protocol/events.py), published if this buy empties the stock
-- returns {'ok', order id, remaining, 0|1 first time} or {'err', code}; a repeated key
-- returns the first answer unchanged (success or failure) and touches nothing.
-- All or nothing: Redis does not roll a script back when a command fails halfway, so every
-- number this script adds is checked before the first write; numbers that cannot be trusted
-- (a sale stored before the edge bounds, a bad argument) answer 'bad_field' and write
-- nothing at all, not even the idempotency record (a retry finds the same data: same answer)
local BIG = 9007199254740992 -- 2^53: above it, Lua's doubles are no longer exact integers
local sid, user, qty = ARGV[3], ARGV[4], tonumber(ARGV[5])
if not int_in(qty, 1, 10000000) or not int_in(tonumber(ARGV[8]), 0, BIG) then
  return {'err', 'bad_field', 'qty or pay window out of bounds'}
end
local prev = redis.call('HGET', KEYS[3], ARGV[6])
if prev then
  local o, r = string.match(prev, '^ok|([^|]+)|(%d+)$')
  if o then return {'ok', o, tonumber(r), 0} end
  return {'err', string.sub(prev, 5)}
end
local status = redis.call('HGET', KEYS[1], sid .. ':status')
if not status then
  return {'err', 'no_such_sale'}
end
local function refuse(code)
  redis.call('HSET', KEYS[3], ARGV[6], 'err|' .. code)
  return {'err', code}
end
local info = cmsgpack.unpack(redis.call('HGET', KEYS[1], sid .. ':info'))
local stock0 = tonumber(redis.call('HGET', KEYS[1], sid .. ':stock'))
local held0 = tonumber(redis.call('HGET', KEYS[2], user) or '0')
local n0 = tonumber(redis.call('HGET', KEYS[1], sid .. ':n') or '0')
local pend0 = tonumber(redis.call('HGET', KEYS[7], 'gmv_pending') or '0')
if type(info) ~= 'table' or not int_in(info.price, 0, 10000000000) or not int_in(info.limit, 1, 10000000)
    or not int_in(info.starts_at, 0, BIG) or not int_in(info.ends_at, 0, BIG)
    or not int_in(stock0, -10000000, 10000000) or not int_in(held0, 0, 10000000) or not int_in(n0, 0, BIG)
    or not int_in(pend0, -BIG, BIG) or info.price * qty >= BIG or pend0 + info.price * qty >= BIG then
  return {'err', 'bad_field', 'the sale holds numbers out of bounds'}
end
local now = now_ms()
if status == 'closed' then return refuse('closed') end
if info.starts_at > 0 and now < info.starts_at then return refuse('not_started') end
if info.ends_at > 0 and now >= info.ends_at then return refuse('ended') end
if qty > info.limit then return refuse('bad_field') end
local stock = tonumber(redis.call('HGET', KEYS[1], sid .. ':stock'))
if stock <= 0 then return refuse('sold_out') end
local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > info.limit then return refuse('limit_reached') end
if stock < qty then return refuse('sold_out') end

local remaining = redis.call('HINCRBY', KEYS[1], sid .. ':stock', -qty)
redis.call('HINCRBY', KEYS[2], user, qty)
local n = redis.call('HINCRBY', KEYS[1], sid .. ':n', 1)
local oid = ARGV[7] .. n
local amount = info.price * qty
redis.call('HSET', KEYS[4], oid, cjson.encode({
  id = oid, room = ARGV[11], sale = sid, user = user, qty = qty, price = info.price,
  amount = amount, status = 'pending', created = now, key = ARGV[12],
  session = session_live(KEYS[7], KEYS[9]) or nil
}))
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[8]), oid)
redis.call('XADD', KEYS[6], '*', 'event', 'created', 'order', oid, 'room', ARGV[11], 'sale', sid,
  'sku', info.sku, 'user', user, 'qty', qty, 'amount', amount, 'ts', now)
redis.call('HINCRBY', KEYS[7], 'orders_pending', 1)
redis.call('HINCRBY', KEYS[7], 'gmv_pending', amount)
session_add(KEYS[7], KEYS[9], 'orders_pending', 1, 'orders')
session_add(KEYS[7], KEYS[9], 'gmv_pending', amount, 'gmv')
redis.call('HSET', KEYS[3], ARGV[6], 'ok|' .. oid .. '|' .. remaining)
-- The stock value goes to every hub of the room (once per subscribed hub: the shard's cost)
-- only when its first two digits change, and for every unit below 100: a sale of 10,000
-- publishes ~280 values, not 10,000, and viewers see "9,900 left" as it happens. The buyer's
-- reply has the exact figure, and the last unit always publishes (0, then `sold_out`).
local function shown(v)
  local step = 1
  while v >= 100 * step do step = step * 10 end
  return v - v % step
end
if shown(stock) ~= shown(remaining) then
  redis.call(ARGV[1], ARGV[2], 'S' .. sid .. ' ' .. remaining)
end
if remaining == 0 then
  redis.call('HSET', KEYS[1], sid .. ':status', 'sold_out')
  publish_durable(KEYS[7], KEYS[8], ARGV[1], ARGV[2], ARGV[13], ARGV[9], ARGV[10])
end
return {'ok', oid, remaining, 1}
