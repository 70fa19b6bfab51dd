-- sale_close.lua: the host closes a sale; later buys answer `closed`.
-- include: lib_publish.lua
-- KEYS[1] sales  KEYS[2] meta  KEYS[3] hist
-- ARGV[1] pubcmd  ARGV[2] channel  ARGV[3] sale id  ARGV[4] epoch candidate  ARGV[5] maxlen
-- ARGV[6] the `sale` event (msgpack, built by protocol/events.py): only its remaining
--         stock is set here, the one value Python cannot know before the close
-- KEYS[4] sales:open: a closed sale leaves it (a join no longer reads it)
-- returns {seq, epoch}, or {-1, 'no_such_sale'}
local sid = ARGV[3]
if not redis.call('HGET', KEYS[1], sid .. ':status') then
  return {-1, 'no_such_sale'}
end
redis.call('HSET', KEYS[1], sid .. ':status', 'closed')
if KEYS[4] then redis.call('SREM', KEYS[4], sid) end
local event = cmsgpack.unpack(ARGV[6])
event.sale.stock = tonumber(redis.call('HGET', KEYS[1], sid .. ':stock'))
return publish_durable(KEYS[2], KEYS[3], ARGV[1], ARGV[2], cmsgpack.pack(event), ARGV[4], ARGV[5])
