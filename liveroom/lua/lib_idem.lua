-- lib_idem.lua: a client's idempotency key on an op that publishes (comment, notice, pin,
-- sale_create, draw_start). Not a script on its own: prepended where a script says
-- `-- include: lib_idem.lua`.
--
-- The key is the op's own string key `lr:{R}:ik:<op>:<len(user)>:<user><client key>`
-- (broker/keys.py), passed by the caller as an optional last KEYS entry (absent: no key).
-- idem_replay(key): the answer stored by the first call with that key, or nil.
-- idem_keep(key, ttl_ms, answer): store a success `answer` (a flat table) for ttl_ms and
-- return it. Kept in the same atomic step as the publish, so a retry after `unavailable`
-- either finds the answer (the first call ran: nothing is published again) or finds
-- nothing (it did not run). Refusals are not kept: they published nothing.
local function idem_replay(key)
  if not key then
    return nil
  end
  local kept = redis.call('GET', key)
  if kept then
    return cmsgpack.unpack(kept)
  end
  return nil
end

local function idem_keep(key, ttl_ms, answer)
  if key then
    redis.call('SET', key, cmsgpack.pack(answer), 'PX', ttl_ms)
  end
  return answer
end
