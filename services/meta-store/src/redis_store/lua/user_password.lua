-- set_password_hash: ARGV = P, hash
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
redis.call('HSET', P .. 'user', 'password_hash', ARGV[2])
-- A new password ends the sessions opened with the old one, on every node.
emit(0, 0, 'r')
publish()
return 1
