-- orders_trim.lua: trim an orders stream by age, never past what a consumer group still
-- needs: entries older than ARGV[1] ms go, except those a group has not read yet (after
-- its last-delivered-id) or read and not acknowledged (its pending list).
-- KEYS[1] an orders stream  ARGV[1] oldest entry time (ms) to keep
-- returns how many entries were trimmed (whole stream nodes: MINID ~)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local bound = tonumber(ARGV[1])
local function ms(id) return tonumber(string.match(id, '^(%d+)')) end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  bound = math.min(bound, ms(f['last-delivered-id']))
  if tonumber(f['pending']) > 0 then
    local p = redis.call('XPENDING', KEYS[1], f['name'])
    if p[2] then bound = math.min(bound, ms(p[2])) end
  end
end
if bound <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', bound)
