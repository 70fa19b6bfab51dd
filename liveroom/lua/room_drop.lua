-- room_drop.lua: delete a room that is over, whole, in one step (the room sweeper calls it
-- once the room has been over for room.ttl_s). Over: no viewer, no live session, no pending
-- order, no open sale (open and not past its ends_at), no open or closing draw. A room that
-- is not over is left as it is. Its sessions' figures (`session:<id>`) keep their own
-- expiry; the `sessions` index of them is given the same retention.
-- KEYS[1] meta  KEYS[2] ref  KEYS[3] hubs  KEYS[4] pending  KEYS[5] sales  KEYS[6] draws
-- KEYS[7] reports  KEYS[8] sessions  KEYS[9..] every other fixed key of the room (deleted)
-- ARGV[1] the room's key prefix `lr:{room}:`  ARGV[2] sessions retention ms
-- The keys named after a sale, draw, reported comment or hub (bought:<sale>, idem:<sale>,
-- entrants:<draw>, pool:<draw>:<claimant>, report:<seq>, hu:<hub>) are found from the hashes above: all share the
-- room's hash tag, so they are on this node.
-- Hubs whose heartbeat has expired (killed, cut off) are reaped first, as presence_reap.lua
-- does, so a room whose only hub died is not held by the viewers it had.
-- A room's own orders stream (a cluster: the KEYS entry ending `:orders:stream`) that a
-- consumer group has not read to its end, or holds entries of unacknowledged, keeps the
-- room (the shop, or the webhooks, still need them).
-- returns 1 (deleted) or 0 (not over: nothing else touched)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hubs = redis.call('HGETALL', KEYS[3])
for i = 1, #hubs, 2 do
  if tonumber(hubs[i + 1]) < now then
    local set = ARGV[1] .. 'hu:' .. hubs[i]
    for _, user in ipairs(redis.call('SMEMBERS', set)) do
      if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
        redis.call('HDEL', KEYS[2], user)
      end
    end
    redis.call('UNLINK', set)
    redis.call('HDEL', KEYS[3], hubs[i])
  end
end
if redis.call('HLEN', KEYS[2]) > 0 or redis.call('HEXISTS', KEYS[1], 'live') == 1
    or redis.call('ZCARD', KEYS[4]) > 0 then
  return 0
end
local open = redis.call('HGET', KEYS[6], 'open')
if open and redis.call('HGET', KEYS[6], open .. ':status') ~= 'closed' then
  return 0
end
for i = 9, #KEYS do
  if string.sub(KEYS[i], -14) == ':orders:stream' and redis.call('EXISTS', KEYS[i]) == 1 then
    local last = nil
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
      local f = {}
      for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
      if not last then
        local info = redis.call('XINFO', 'STREAM', KEYS[i])
        for j = 1, #info, 2 do
          if info[j] == 'last-generated-id' then last = info[j + 1] end
        end
      end
      if tonumber(f['pending']) > 0 or f['last-delivered-id'] ~= last then return 0 end
    end
  end
end
local sales = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[5])) do
  local sid = string.match(f, '^(.+):status$')
  if sid then
    sales[#sales + 1] = sid
    if redis.call('HGET', KEYS[5], f) == 'open' then
      local ok, info = pcall(cmsgpack.unpack, redis.call('HGET', KEYS[5], sid .. ':info') or '')
      local ends = ok and type(info) == 'table' and tonumber(info.ends_at) or 0
      if ends == 0 or now < ends then return 0 end
    end
  end
end
local p = ARGV[1]
for _, sid in ipairs(sales) do
  redis.call('UNLINK', p .. 'bought:' .. sid, p .. 'idem:' .. sid)
end
for _, f in ipairs(redis.call('HKEYS', KEYS[6])) do
  local id = string.match(f, '^(.+):status$')
  if id then
    redis.call('UNLINK', p .. 'entrants:' .. id)
    -- an online draw's pool list, left by a claimant that died before the result
    local owner = string.match(redis.call('HGET', KEYS[6], id .. ':claim') or '', '^(%S+) ')
    if owner then redis.call('UNLINK', p .. 'pool:' .. id .. ':' .. owner) end
  end
end
for _, seq in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
  redis.call('UNLINK', p .. 'report:' .. seq)
end
for _, hub in ipairs(redis.call('HKEYS', KEYS[3])) do
  redis.call('UNLINK', p .. 'hu:' .. hub)
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
for i = 9, #KEYS do
  redis.call('UNLINK', KEYS[i])
end
redis.call('PEXPIRE', KEYS[8], ARGV[2])
return 1
