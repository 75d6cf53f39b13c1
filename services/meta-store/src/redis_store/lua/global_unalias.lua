-- Global (no user prefix). KEYS[1] = "aliases" (address -> id); ARGV = id, address...
-- Drops the addresses that still point at that account.
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
