-- lib_milestones.lua: shared by the scripts that move a count milestones watch (room_like:
-- likes; presence_beat: online). Not a script on its own; needs lib_publish.lua before it.
--
-- check_milestones(ms, kind, prev, now, meta, hist, pubcmd, channel, epoch_candidate, maxlen)
--   ms: the room's milestones hash (id -> msgpack {kind, every | value, event, draw, fired});
--   `event` is the milestone event's body without its value (protocol/events.py pack_open)
--   prev, now: the count before and after this change
-- A milestone fires when the count crosses it: `every` N at each multiple of N this change
-- crosses (at most the last 10 of them, should one change cross more), `value` once. Its `milestone` event (prepared by
-- protocol/events.py, only `value` set here) is published as a durable event in the same
-- atomic step as the change, so it fires once for the room whichever hub moved the count.
-- Returns the ids of the fired milestones that start a draw (the caller starts it).
local function check_milestones(ms, kind, prev, now, meta, hist, pubcmd, channel, epoch, maxlen)
  local draws = {}
  if now <= prev then return draws end
  local all = redis.call('HGETALL', ms)
  for i = 1, #all, 2 do
    local m = cmsgpack.unpack(all[i + 1])
    if m.kind == kind then
      local hits = {}
      if m.every and m.every > 0 then
        local last = math.floor(now / m.every)
        local first = math.max(math.floor(prev / m.every) + 1, last - 9)
        for k = first, last do hits[#hits + 1] = k * m.every end
      elseif m.value and not m.fired and prev < m.value and m.value <= now then
        hits[1] = m.value
        m.fired = true
        redis.call('HSET', ms, all[i], cmsgpack.pack(m))
      end
      for _, value in ipairs(hits) do
        publish_durable(meta, hist, pubcmd, channel, m.event .. cmsgpack.pack(value), epoch, maxlen)
      end
      if hits[1] and m.draw then draws[#draws + 1] = all[i] end
    end
  end
  return draws
end
