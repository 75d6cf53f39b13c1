-- the per-user half of put_alias / delete_alias: ARGV = P, address, "1" (add) | "0" (remove)
if ARGV[3] == '1' then
  if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
  redis.call('SADD', P .. 'aliases', ARGV[2])
else
  redis.call('SREM', P .. 'aliases', ARGV[2])
end
return 1
