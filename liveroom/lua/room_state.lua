-- room_state.lua: what a joining viewer's `welcome` needs, in one round trip.
-- KEYS[1] meta  KEYS[2] ref  KEYS[3] hist  KEYS[4] sales  KEYS[5] draws (optional)
-- KEYS[6] sales:open (optional): only those sales are read, not every sale the room held
-- ARGV[1] epoch candidate (the room's epoch if it has none yet); '' reads only: nothing is
-- written (GET /api/rooms/{room}: a read-only request writes nothing)
-- returns {meta as a flat list, online, first seq still in history (0 if none), sales flat,
-- the open (or closing) draw's public map (msgpack) or false}
if ARGV[1] ~= '' and redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[3])
end
local first = 0
local head = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if head[1] then
  first = tonumber(string.match(head[1][1], '^(%d+)'))
end
local draw = false
if KEYS[5] then
  local id = redis.call('HGET', KEYS[5], 'open')
  if id and redis.call('HGET', KEYS[5], id .. ':status') ~= 'closed' then
    draw = redis.call('HGET', KEYS[5], id .. ':info')
  end
end
local sales = {}
if KEYS[6] then
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    local f = {sid .. ':info', sid .. ':stock', sid .. ':status', sid .. ':n'}
    local v = redis.call('HMGET', KEYS[4], unpack(f))
    for i = 1, 4 do
      if v[i] then sales[#sales + 1] = f[i]; sales[#sales + 1] = v[i] end
    end
  end
else
  sales = redis.call('HGETALL', KEYS[4])
end
return {redis.call('HGETALL', KEYS[1]), redis.call('HLEN', KEYS[2]), first, sales, draw}
