-- KEYS[1]: the index to walk. ARGV: event key prefix, before seq ('' = none), limit, then the
-- owner, action and target_id to match ('' = any). Walks newest first in pages until ``limit`` match.
local limit = tonumber(ARGV[3])
local max = ARGV[2] == '' and '+inf' or '(' .. ARGV[2]
local out, offset = {}, 0
while #out < limit do
  local seqs = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'LIMIT', offset, 200)
  if #seqs == 0 then break end
  offset = offset + #seqs
  for _, seq in ipairs(seqs) do
    local data = redis.call('GET', ARGV[1] .. seq)
    if data then
      local ev = cjson.decode(data)
      if (ARGV[4] == '' or ev['owner'] == ARGV[4]) and (ARGV[5] == '' or ev['action'] == ARGV[5])
          and (ARGV[6] == '' or ev['target_id'] == ARGV[6]) then
        out[#out + 1] = data
        if #out >= limit then break end
      end
    end
  end
end
return out
