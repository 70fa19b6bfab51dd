-- order_confirm.lua: the shop backend says a pending order is paid.
-- include: lib_session.lua
-- include: lib_numbers.lua
-- KEYS[1] orders  KEYS[2] pending  KEYS[3] orders stream  KEYS[4] meta  KEYS[5] live (optional)
-- KEYS[6] session:<id> of the order's session (optional): an order placed in a live session
-- moves from pending to confirmed in that session's figures, live or ended
-- ARGV[1] order id
-- returns {'ok', 'confirmed'} (also when already confirmed: a retried call is harmless),
-- or {'err', code, status}: no_such_order, or closed (cancelled or expired first)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'err', 'no_such_order', ''} end
local o = cjson.decode(raw)
-- all or nothing: the numbers this script adds are checked before the first write
if not int_in(o.qty, 1, 10000000) or not int_in(o.amount, 0, 9007199254740991) then
  return {'err', 'bad_field', tostring(o.status)}
end
if o.status == 'confirmed' then return {'ok', 'confirmed'} end
if o.status ~= 'pending' then return {'err', 'closed', o.status} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
o.status = 'confirmed'
o.closed_at = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(o))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'orders_pending', -1)
redis.call('HINCRBY', KEYS[4], 'gmv_pending', -o.amount)
redis.call('HINCRBY', KEYS[4], 'orders_confirmed', 1)
redis.call('HINCRBY', KEYS[4], 'gmv_confirmed', o.amount)
local figures = session_of_order(o, KEYS[4], KEYS[5], KEYS[6])
if figures then
  redis.call('HINCRBY', figures, 'orders_pending', -1)
  redis.call('HINCRBY', figures, 'gmv_pending', -o.amount)
  redis.call('HINCRBY', figures, 'orders_confirmed', 1)
  redis.call('HINCRBY', figures, 'gmv_confirmed', o.amount)
end
redis.call('XADD', KEYS[3], '*', 'event', 'confirmed', 'order', ARGV[1], 'room', o.room, 'sale', o.sale,
  'user', o.user, 'qty', o.qty, 'amount', o.amount, 'ts', now)
return {'ok', 'confirmed'}
