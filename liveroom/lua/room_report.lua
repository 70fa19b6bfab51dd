-- room_report.lua: one user's report of one comment (at most one per user per comment).
-- KEYS[1] reports (ZSET seq -> count)  KEYS[2] reported (HASH seq -> comment body)  KEYS[3] report:<seq> (HASH user -> reason)
-- ARGV[1] seq  ARGV[2] user  ARGV[3] reason  ARGV[4] the comment's body (read from history by the caller)
-- returns the comment's report count (unchanged when this user had reported it already)
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[4])
if redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[3]) == 1 then
  return tonumber(redis.call('ZINCRBY', KEYS[1], 1, ARGV[1]))
end
return tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or 0)
