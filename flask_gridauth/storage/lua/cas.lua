-- ARGV[3]: '' leaves the quota counter alone, '-' deletes it, else it is re-set to ARGV[3], ARGV[4].
-- ARGV[5], ARGV[6]: the channel of key changes and the lookup published on it (for the key caches).
if redis.call('HGET', KEYS[1], 'd') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
if ARGV[3] == '-' then redis.call('HDEL', KEYS[1], 'q', 'qt')
elseif ARGV[3] and ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'q', ARGV[3], 'qt', ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
