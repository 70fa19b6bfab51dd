-- draw_claim.lua: a hub's closer claims a due draw, so that one hub at a time closes it.
-- KEYS[1] draws
-- ARGV[1] draw id  ARGV[2] this hub's id  ARGV[3] claim ttl ms
-- A claim whose ttl ran out (its hub died mid-close) may be taken by another hub.
-- returns {'ok', seed hex, exclude (0|1), session ('' none)} | {'gone'} (no such draw) | {'closed'} |
-- {'early'} (not due yet) | {'busy'} (another hub holds a live claim)
local id = ARGV[1]
local status = redis.call('HGET', KEYS[1], id .. ':status')
if not status then
  return {'gone'}
end
if status == 'closed' then
  return {'closed'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(redis.call('HGET', KEYS[1], id .. ':ends')) then
  return {'early'}
end
if status == 'closing' then
  local claim = redis.call('HGET', KEYS[1], id .. ':claim') or ''
  local owner, untl = string.match(claim, '^(%S+) (%d+)$')
  if owner and owner ~= ARGV[2] and tonumber(untl) > now then
    return {'busy'}
  end
end
redis.call('HSET', KEYS[1], id .. ':status', 'closing', id .. ':claim', ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
return {'ok', redis.call('HGET', KEYS[1], id .. ':seed'), redis.call('HGET', KEYS[1], id .. ':excl'),
  redis.call('HGET', KEYS[1], id .. ':sess') or ''}
