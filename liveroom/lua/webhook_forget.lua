-- Forget the webhook consumers of processes gone for good (liveroom/webhooks.py): those
-- holding nothing pending and idle longer than ARGV[2] ms. Atomic, so a consumer is never
-- deleted with entries it read in between (DELCONSUMER drops a consumer's pending entries).
-- KEYS[1] the orders stream; ARGV[1] the group, ARGV[2] min idle ms, ARGV[3] the caller's consumer
local gone = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) and f['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    gone = gone + 1
  end
end
return gone
