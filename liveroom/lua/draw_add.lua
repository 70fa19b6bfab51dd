-- draw_add.lua: the claimant of an `online` draw enters a chunk of the users present.
-- KEYS[1] draws  KEYS[2] entrants  KEYS[3] won
-- ARGV[1] draw id  ARGV[2] claimant hub id  ARGV[3] exclude (0|1)  ARGV[4..] users
-- Only the hub holding the claim adds (a hub whose claim was taken over adds nothing).
-- returns how many were added, or -1 when this hub no longer holds the claim
local id = ARGV[1]
if redis.call('HGET', KEYS[1], id .. ':status') ~= 'closing' then
  return -1
end
local owner = string.match(redis.call('HGET', KEYS[1], id .. ':claim') or '', '^(%S+) ')
if owner ~= ARGV[2] then
  return -1
end
local n = 0
for i = 4, #ARGV do
  if ARGV[3] ~= '1' or redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 0 then
    n = n + redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[i])
  end
end
return n
