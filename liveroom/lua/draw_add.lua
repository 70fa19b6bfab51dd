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
local won = {}
if ARGV[3] == '1' then
  won = redis.call('SMISMEMBER', KEYS[3], unpack(ARGV, 4))
end
local args = {}
for i = 4, #ARGV do
  if won[i - 3] ~= 1 then
    args[#args + 1] = 0
    args[#args + 1] = ARGV[i]
  end
end
if #args == 0 then
  return 0
end
-- one ZADD for the whole chunk (ADD_CHUNK users: well under Lua's unpack limit)
return redis.call('ZADD', KEYS[2], 'NX', unpack(args))
