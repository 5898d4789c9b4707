-- KEYS[1]: the all index. ARGV: event key prefix, owner index prefix, target index prefix, cutoff
-- (epoch seconds), limit. Deletes the oldest events created before the cutoff with their index entries.
local seqs = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
local n = 0
for _, seq in ipairs(seqs) do
  local data = redis.call('GET', ARGV[1] .. seq)
  if data then
    local ev = cjson.decode(data)
    if tonumber(ev['created_at']) >= tonumber(ARGV[4]) then break end
    if ev['owner'] ~= cjson.null then redis.call('ZREM', ARGV[2] .. ev['owner'], seq) end
    if ev['target_id'] ~= cjson.null then redis.call('ZREM', ARGV[3] .. ev['target_id'], seq) end
    redis.call('DEL', ARGV[1] .. seq)
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], seq)
end
return n
