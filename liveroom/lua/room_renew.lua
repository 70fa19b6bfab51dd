-- room_renew.lua: Redis lost acked events of the room (a replica promoted while it lagged)
-- and handed their seqs out again; a hub noticed. The room moves to a new epoch, so that a
-- client resuming later with a seq of the lost timeline gets a fresh welcome rather than
-- the new events after its seq (it would keep the lost ones and miss their replacements).
-- History keeps what Redis has from the first seq handed out again: the hubs send those
-- events after the fresh welcome (acked, and never seen by viewers of the lost timeline).
-- Everything before it, every viewer already had. Compare-and-set: of several hubs
-- noticing the same loss, one renews.
-- KEYS[1] meta  KEYS[2] hist
-- ARGV[1] the epoch the hub had  ARGV[2] the new epoch  ARGV[3] the first seq handed out again
-- returns the room's epoch now
local now = redis.call('HGET', KEYS[1], 'epoch')
if now == ARGV[1] then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2])
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3] .. '-0')
  return ARGV[2]
end
return now or ''
