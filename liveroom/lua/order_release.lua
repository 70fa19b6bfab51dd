-- order_release.lua: cancel a pending order, or expire it once its pay window has passed;
-- either gives the stock and the user's quota back. Exactly once: only a `pending` order
-- changes, so a cancel racing an expiry releases the units one time.
-- KEYS[1] orders  KEYS[2] pending  KEYS[3] sales  KEYS[4] bought:<sid>  KEYS[5] orders stream
-- include: lib_session.lua
-- include: lib_numbers.lua
-- KEYS[6] meta  KEYS[7] live (optional)  KEYS[8] session:<id> of the order's session (optional):
-- an order placed in a live session leaves that session's pending figures, live or ended (the
-- timeline keeps the minute it was placed in)
-- ARGV[1] order id  ARGV[2] 'cancelled' or 'expired'  ARGV[3] pubcmd  ARGV[4] channel
-- returns {'ok', status} when released now, {'err', code, status} otherwise
-- (no_such_order; closed: the order is no longer pending; not_due: pay window still open)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'err', 'no_such_order', ''} end
local o = cjson.decode(raw)
-- all or nothing: the numbers this script adds are checked before the first write
if not int_in(o.qty, 1, 10000000) or not int_in(o.amount, 0, 9007199254740991) then
  return {'err', 'bad_field', tostring(o.status)}
end
if o.status ~= 'pending' then return {'err', 'closed', o.status} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == 'expired' then
  local due = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0')
  if due > now then return {'err', 'not_due', o.status} end
end
o.status = ARGV[2]
o.closed_at = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(o))
redis.call('ZREM', KEYS[2], ARGV[1])
local remaining = redis.call('HINCRBY', KEYS[3], o.sale .. ':stock', o.qty)
if redis.call('HINCRBY', KEYS[4], o.user, -o.qty) <= 0 then
  redis.call('HDEL', KEYS[4], o.user)
end
if redis.call('HGET', KEYS[3], o.sale .. ':status') == 'sold_out' then
  redis.call('HSET', KEYS[3], o.sale .. ':status', 'open')
end
redis.call('HINCRBY', KEYS[6], 'orders_pending', -1)
redis.call('HINCRBY', KEYS[6], 'gmv_pending', -o.amount)
local figures = session_of_order(o, KEYS[6], KEYS[7], KEYS[8])
if figures then
  redis.call('HINCRBY', figures, 'orders_pending', -1)
  redis.call('HINCRBY', figures, 'gmv_pending', -o.amount)
end
redis.call('XADD', KEYS[5], '*', 'event', ARGV[2], 'order', ARGV[1], 'room', o.room, 'sale', o.sale,
  'user', o.user, 'qty', o.qty, 'amount', o.amount, 'ts', now)
redis.call(ARGV[3], ARGV[4], 'S' .. o.sale .. ' ' .. remaining)
return {'ok', ARGV[2]}
