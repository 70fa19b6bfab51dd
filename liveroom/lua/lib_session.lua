-- lib_session.lua: a live session's figures, counted by the scripts that count the room's
-- totals, in the same atomic step (so a session's figures and the room's agree).
-- Not a script on its own: scripts.py prepends it to those that `-- include: lib_session.lua`.
--
-- A room is live while its meta hash has `live` (the session id) and `live_at` (its start,
-- ms). The live session's figures are the room's `live` hash (KEYS of the caller, under the
-- room's hash tag; live_end.lua renames it to `session:<id>`): totals `comments`, `likes`,
-- `orders_pending`, `orders_confirmed`, `gmv_pending`, `gmv_confirmed`, `draws`,
-- `peak_online`, `seen` (last ms the room had a viewer), and the timeline, one field per
-- minute and figure: `<minute start ms>:<comments|likes|orders|gmv|online>`.
-- A caller that passes no live key (nil) counts nothing.

local function session_minute()
  local t = redis.call('TIME')
  return math.floor(tonumber(t[1]) / 60) * 60000
end

-- the live session's id, or nil (no session live, or no live key given)
local function session_live(meta, live)
  if not live then return nil end
  local id = redis.call('HGET', meta, 'live')
  if not id then return nil end
  return id
end

-- add n to a total and, when `figure` is given, to this minute's entry of the timeline
local function session_add(meta, live, field, n, figure)
  if not session_live(meta, live) then return end
  redis.call('HINCRBY', live, field, n)
  if figure then
    redis.call('HINCRBY', live, session_minute() .. ':' .. figure, n)
  end
end

-- the online count now: peak of the session, highest of this minute, last seen with viewers
local function session_online(meta, live, online)
  if not session_live(meta, live) then return end
  if online > tonumber(redis.call('HGET', live, 'peak_online') or '0') then
    redis.call('HSET', live, 'peak_online', online)
  end
  local t = redis.call('TIME')
  local f = (math.floor(tonumber(t[1]) / 60) * 60000) .. ':online'
  if online > tonumber(redis.call('HGET', live, f) or '0') then
    redis.call('HSET', live, f, online)
  end
  if online > 0 then
    redis.call('HSET', live, 'seen', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  end
end

-- the figures an order placed in a session moves when it is confirmed or released: the live
-- hash while that session is live, else the ended session's hash (`ended`, a key of the
-- caller, checked by its `id`: it may be gone after the retention), else nil
local function session_of_order(o, meta, live, ended)
  if not o.session then return nil end
  if live and o.session == session_live(meta, live) then return live end
  if ended and redis.call('HGET', ended, 'id') == o.session then return ended end
  return nil
end

-- a winner's member of the room's `won` set for a draw of session `sess` ('' or false: none)
local function won_member(sess, user)
  if sess and sess ~= '' then return sess .. '|' .. user end
  return user
end
