-- room_renew.lua: Redis lost acked events of the room (a replica promoted while it lagged)
-- and handed their seqs out again; a hub noticed. The room moves to a new epoch, so that a
-- client resuming later with a seq of the lost timeline gets a fresh welcome rather than
-- the new events after its seq (it would keep the lost ones and miss their replacements).
-- History goes with the old epoch, as when a room gets its first epoch (room_state.lua):
-- it mixes both timelines, and no resume under the new epoch reaches before it.
-- Compare-and-set: of several hubs noticing the same loss, one renews.
-- KEYS[1] meta  KEYS[2] hist
-- ARGV[1] the epoch the hub had  ARGV[2] the new epoch
-- returns the room's epoch now
local now = redis.call('HGET', KEYS[1], 'epoch')
if now == ARGV[1] then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2])
  redis.call('DEL', KEYS[2])
  return ARGV[2]
end
return now or ''
