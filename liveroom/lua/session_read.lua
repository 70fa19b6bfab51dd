-- session_read.lua: one session's figures, live or ended, in one atomic read.
-- KEYS[1] meta  KEYS[2] live  KEYS[3] live:hll  KEYS[4] session:<id>  KEYS[5] session:<id>:hll
-- ARGV[1] session id
-- returns {figures hash flat (empty: no such session), viewers (HyperLogLog estimate), 1 live | 0}
if redis.call('HGET', KEYS[1], 'live') == ARGV[1] then
  return {redis.call('HGETALL', KEYS[2]), redis.call('PFCOUNT', KEYS[3]), 1}
end
return {redis.call('HGETALL', KEYS[4]), redis.call('PFCOUNT', KEYS[5]), 0}
