-- Global (no user prefix). KEYS[1] = "users" (login name -> id); ARGV = name, id.
-- Frees the name only while it still belongs to that account (a new account may have taken it).
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
