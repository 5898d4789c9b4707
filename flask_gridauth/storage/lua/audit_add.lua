-- KEYS: the seq counter, the all/owner/target indexes ('' when absent). ARGV: the event JSON with
-- "seq": 0 first, the event key prefix. The event and its index entries land together.
local seq = redis.call('INCR', KEYS[1])
local data = string.gsub(ARGV[1], '"seq": 0', '"seq": ' .. seq, 1)
redis.call('SET', ARGV[2] .. seq, data)
for i = 2, #KEYS do
  if KEYS[i] ~= '' then redis.call('ZADD', KEYS[i], seq, seq) end
end
return seq
