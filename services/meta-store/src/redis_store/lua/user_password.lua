-- set_password_hash: ARGV = P, hash
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
redis.call('HSET', P .. 'user', 'password_hash', ARGV[2])
return 1
