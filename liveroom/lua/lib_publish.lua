-- lib_publish.lua: shared by every script that emits a durable room event.
-- Not a script on its own: scripts.py prepends it to those that `-- include: lib_publish.lua`.
--
-- publish_durable(meta, hist, pubcmd, channel, body, epoch_candidate, maxlen)
--   meta, hist: the room's meta hash and history stream (declared in the caller's KEYS)
--   pubcmd: PUBLISH (standalone shards) or SPUBLISH (cluster)
--   body: the event, msgpack, without its seq
--   epoch_candidate: becomes the room's epoch if it has none (history lost or new room)
-- Assigns the next seq, appends the event to the history (id "<seq>-0", trimmed to about
-- maxlen), publishes "D<seq> <epoch>\n<body>" and returns {seq, epoch}. seq is assigned
-- here, in the same atomic step that publishes, so every hub sees the same order.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function publish_durable(meta, hist, pubcmd, channel, body, epoch_candidate, maxlen)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = epoch_candidate
    redis.call('HSET', meta, 'epoch', epoch)
    redis.call('DEL', hist)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('XADD', hist, 'MAXLEN', '~', maxlen, seq .. '-0', 'e', body)
  redis.call(pubcmd, channel, 'D' .. seq .. ' ' .. epoch .. '\n' .. body)
  return {seq, epoch}
end
