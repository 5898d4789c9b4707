if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
local data = string.gsub(ARGV[3], '"seq": 0', '"seq": ' .. seq, 1)
redis.call('HSET', KEYS[1], 'd', data)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'q', ARGV[4], 'qt', ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[2])
redis.call('ZADD', KEYS[5], seq, ARGV[2])
return seq
